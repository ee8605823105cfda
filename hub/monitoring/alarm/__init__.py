"""MON-8: the hub as an ANSI/SIA DC-09 alarm receiver for technical events.

    panel --TCP/UDP--> :mod:`.server` (frame, CRC, length, key, timestamp window)
        --> :mod:`.receiver` stores the message through the intake pipeline (source ``alarm``,
            dedupe key = panel account, sequence, timestamp and content) and only then ACKs
        --> the intake worker applies it with :mod:`.service`: every event is kept, a trouble
            opens a ticket for the object or folds into its open one, a restore is noted.

:mod:`.frame` (framing, CRC-16, length), :mod:`.crypto` (AES-CBC, zero IV), :mod:`.codes`
(Contact ID and SIA tables and the default trouble rules) are pure and know nothing of the hub.
"""
