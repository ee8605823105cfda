"""The web app's message catalogue: English is the key, other languages map it (ISSUE 13).

A small catalogue instead of gettext files: the interface has a few hundred strings, every one is
next to its translation here, and a test checks that every string a template asks for has one.
Refusals from the services are translated by their stable ``code`` (``error.<code>``), falling back
to the service's English message.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["LANGUAGES", "Translator", "choose_language", "translator"]

LANGUAGES = ("en", "ru")

_RU: dict[str, str] = {
    # frame
    "Hub": "Хаб",
    "Tickets": "Заявки",
    "New": "Новые",
    "All": "Все",
    "Console": "Пульт",
    "Sign in": "Войти",
    "Sign out": "Выйти",
    "Language": "Язык",
    "Skip to content": "К содержимому",
    "Menu": "Меню",
    # sign-in
    "Sign in to the hub": "Вход в хаб",
    "Account": "Аккаунт",
    "E-mail": "Эл. почта",
    "Password": "Пароль",
    "Unknown account, login or password": "Неизвестный аккаунт, логин или пароль",
    "Your session has ended. Sign in again: your unsent comment is kept.": (
        "Сеанс завершён. Войдите снова: неотправленный комментарий сохранён."
    ),
    "You have signed out.": "Вы вышли.",
    "The form has expired. Try again.": "Форма устарела. Попробуйте ещё раз.",
    # list
    "Search": "Поиск",
    "Number, client, phone, address, text": "Номер, клиент, телефон, адрес, текст",
    "Status": "Статус",
    "Any": "Любой",
    "Responsible": "Ответственный",
    "Anyone": "Любой",
    "Nobody": "Никто",
    "Object": "Объект",
    "Source": "Источник",
    "Flags": "Флаги",
    "Filters": "Фильтры",
    "Needs reply": "Ждёт ответа",
    "Important": "Важная",
    "SLA breached": "Нарушен SLA",
    "Filter": "Применить",
    "Reset": "Сбросить",
    "Number": "Номер",
    "Title": "Тема",
    "Client": "Клиент",
    "Priority": "Приоритет",
    "Created": "Создана",
    "Next page": "Следующая страница",
    "First page": "Первая страница",
    "No tickets match these filters.": "Нет заявок по этим фильтрам.",
    "Change the filters or create a ticket.": "Измените фильтры или создайте заявку.",
    "New ticket": "Новая заявка",
    "Live": "Онлайн",
    "Offline": "Нет связи",
    "new ticket": "новая заявка",
    # ticket page
    "Ticket": "Заявка",
    "Type": "Тип",
    "Company": "Компания",
    "Contact": "Контакт",
    "Address": "Адрес",
    "Executors": "Исполнители",
    "Observers": "Наблюдатели",
    "Reaction due": "Срок реакции",
    "Resolution due": "Срок решения",
    "Repair date": "Дата ремонта",
    "Pending until": "Отложена до",
    "Description": "Описание",
    "Actions": "Действия",
    "Change status": "Сменить статус",
    "Comment": "Комментарий",
    "Until": "До",
    "Apply": "Применить",
    "Assignment": "Назначение",
    "Assign": "Назначить",
    "Save": "Сохранить",
    "Comments": "Комментарии",
    "No comments yet.": "Комментариев пока нет.",
    "Write the first one below.": "Напишите первый ниже.",
    "Public (the client sees it)": "Публичный (видит клиент)",
    "Private": "Приватный",
    "Public": "Публичный",
    "Files": "Файлы",
    "Attach files": "Прикрепить файлы",
    "Send": "Отправить",
    "History": "История",
    "Back to tickets": "К заявкам",
    "Create": "Создать",
    "Ticket created": "Заявка создана",
    "Comment added": "Комментарий добавлен",
    "Status changed": "Статус изменён",
    "Saved": "Сохранено",
    "A draft of your comment was restored.": "Черновик комментария восстановлен.",
    "Not found": "Не найдено",
    "There is no such page, or it belongs to another account.": (
        "Такой страницы нет, или она принадлежит другому аккаунту."
    ),
    "Something went wrong": "Что-то пошло не так",
    "system": "система",
    "client": "клиент",
    "The status changed: reload for the actions it allows now.": (
        "Статус изменился: обновите страницу, чтобы увидеть доступные действия."
    ),
    "Reload": "Обновить",
    "none": "нет",
    # client cards
    "All tickets": "Все заявки",
    "No tickets yet.": "Заявок пока нет.",
    "Category": "Категория",
    "Phones": "Телефоны",
    "Phone": "Телефон",
    "Mobile": "Мобильный",
    "Contacts": "Контакты",
    "Objects": "Объекты",
    "Activity": "Активность",
    "No activity yet.": "Активности пока нет.",
    "Object users": "Пользователи объекта",
    "role.admin": "Администратор",
    "role.user": "Пользователь",
    "activity.ticket": "Заявка",
    "activity.rating": "Оценка",
    "activity.call": "Звонок",
    "activity.payment": "Оплата",
    "activity.refund": "Возврат",
    # statuses
    "status.open": "Открыта",
    "status.in_progress": "В работе",
    "status.pending": "Отложена",
    "status.resolved": "Решена",
    "status.closed": "Закрыта",
    "status.cancelled": "Отменена",
    "status.reopened": "Возобновлена",
    # status actions
    "to.in_progress": "Взять в работу",
    "to.pending": "Отложить",
    "to.resolved": "Решить",
    "to.cancelled": "Отменить",
    "to.open": "Вернуть в открытые",
    "to.reopened": "Возобновить",
    "to.closed": "Закрыть",
    # priorities, types, sources
    "priority.low": "Низкий",
    "priority.normal": "Обычный",
    "priority.high": "Высокий",
    "priority.critical": "Критический",
    "type.service": "Обслуживание",
    "type.incident": "Инцидент",
    "type.request": "Запрос",
    "type.internal": "Внутренняя",
    "source.incoming_call": "Входящий звонок",
    "source.outgoing_call": "Исходящий звонок",
    "source.visit": "Визит",
    "source.email": "Эл. почта",
    "source.messenger": "Мессенджер",
    "source.internal": "Внутренняя",
    "source.client_app": "Приложение клиента",
    "source.monitoring": "Мониторинг",
    "source.partner": "Партнёр",
    "source.web": "Сайт",
    "source.other": "Другое",
    # history
    "history.created": "Создана",
    "history.status_changed": "Статус изменён",
    "history.assignment": "Назначение",
    "history.updated": "Изменена",
    "history.rated": "Оценка",
    "history.partner_rated": "Оценка партнёра",
    "history.sla_breached": "Нарушен SLA",
    "history.sla_met": "SLA выполнен",
    "history.file_added": "Файл добавлен",
    "history.monitoring_ref": "Номер мониторинга",
    # refusals, by code
    "error.responsible_required": "Для этого статуса нужен ответственный.",
    "error.comment_required": "Для этого статуса нужен комментарий.",
    "error.until_required": "Укажите, до какого времени отложить.",
    "error.until_in_past": "Время «до» должно быть в будущем.",
    "error.until_naive": "Время «до» должно быть с часовым поясом.",
    "error.transition_not_allowed": "Из этого статуса так перейти нельзя.",
    "error.confirmation_required": (
        "Решённая заявка закрывается подтверждением клиента, оценкой или по таймауту."
    ),
    "error.ticket_final": "Закрытая или отменённая заявка не меняется.",
    "error.comment_empty": "Напишите текст комментария.",
    "error.employee_not_found": "Нет такого сотрудника.",
    "error.file_too_large": "Файл слишком большой.",
    "error.too_many_files": "Слишком много файлов в заявке.",
}

_CATALOGUES: dict[str, dict[str, str]] = {"ru": _RU}
# What English shows for keys that are not English text themselves.
_EN_KEYS: dict[str, str] = {
    "status.in_progress": "In progress",
    "to.in_progress": "Take into work",
    "to.pending": "Put on hold",
    "to.resolved": "Resolve",
    "to.cancelled": "Cancel ticket",
    "to.open": "Back to open",
    "to.reopened": "Reopen",
    "to.closed": "Close",
    "source.client_app": "Client app",
    "history.sla_breached": "SLA breached",
    "history.sla_met": "SLA met",
    "history.file_added": "File added",
    "history.monitoring_ref": "Monitoring reference",
}

Translator = Callable[[str], str]


def _english(key: str) -> str:
    if key in _EN_KEYS:
        return _EN_KEYS[key]
    if key.startswith("error."):
        return ""
    prefix, dot, rest = key.partition(".")
    if dot and prefix in {"status", "priority", "type", "source", "history", "to", "role", "activity"}:
        return rest.replace("_", " ").capitalize()
    return key


def translator(language: str) -> Translator:
    """``_(text)`` for one language; an English key stands for itself."""
    catalogue = _CATALOGUES.get(language, {})

    def gettext(key: str) -> str:
        return catalogue.get(key) or _english(key)

    return gettext


def choose_language(setting: str | None, accept_language: str | None) -> str:
    """The user's own setting, else the browser's first language we have, else English."""
    if setting in LANGUAGES:
        return setting
    weighted: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        weighted.append((quality, tag.split("-")[0].lower()))
    for _, language in sorted(weighted, key=lambda pair: -pair[0]):
        if language in LANGUAGES:
            return language
    return "en"


def catalogue_keys(language: str) -> set[str]:
    return set(_CATALOGUES.get(language, {}))
