"""IP telephony (TEL-1..8): PBX settings, event intake in two dialects, caller match, live pop-ups,
call list, call-to-ticket binding, click-to-call. See hub/telephony/service.py for the rules."""
