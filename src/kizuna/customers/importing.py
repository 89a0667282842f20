"""Import of customers, contacts and subscriptions from CSV and XLSX files.

A file is read whole, every row is validated and matched against the database first, and
only a file without a single bad row is written, in one transaction. Rows are upserted by
external id (or a natural key when the file has none), and only rows whose values differ
are written, so importing the same file twice changes nothing.
"""

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, Min, OuterRef, Q, Subquery
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.core.models import User
from kizuna.customers.models import (
    Contact,
    ContactRole,
    Customer,
    ImportJob,
    ImportKind,
    ImportStatus,
    LifecycleStage,
    Plan,
    Product,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    TouchModel,
)

Progress = Callable[[int, int], None]


BATCH_SIZE = 1000
# IN lists are sent in chunks: SQLite caps the number of parameters of one statement.
LOOKUP_CHUNK = 500
MAX_REPORTED_ERRORS = 1000
PREVIEW_ROWS = 10
# Values of a mapping that mean "do not import this column".
IGNORE = frozenset({"", "-", "ignore", "skip"})


# ---------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class RowError:
    """One problem: the row as numbered in the file (header = 1), the column, the value, why.

    ``row`` is None for a problem with the whole file (unreadable, a required column missing).
    """

    row: int | None
    column: str | None
    value: str
    message: str


@dataclass(frozen=True)
class ImportReport:
    """What an import did, or why it did nothing (``errors`` not empty)."""

    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: tuple[RowError, ...] = ()
    error_count: int = 0
    customers_created: int = 0
    products_created: int = 0
    plans_created: int = 0
    ignored_columns: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types."""
        data = asdict(self)
        data["errors"] = [asdict(error) for error in self.errors]
        data["ignored_columns"] = list(self.ignored_columns)
        data["ok"] = self.ok
        return data


class ImportRejectedError(Exception):
    """Raised inside the import when the file must be rejected as a whole."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        super().__init__(errors[0].message if errors else "rejected")
        self.errors = list(errors)


class _Errors:
    """Collects row errors, keeping the first MAX_REPORTED_ERRORS and counting all."""

    def __init__(self) -> None:
        self.items: list[RowError] = []
        self.count = 0
        self.bad_rows: set[int] = set()

    def add(self, row: int | None, column: str | None, value: object, message: str) -> None:
        self.count += 1
        if row is not None:
            self.bad_rows.add(row)
        if len(self.items) < MAX_REPORTED_ERRORS:
            shown = "" if value is None else str(value)
            self.items.append(RowError(row, column, shown[:200], message))

    def __bool__(self) -> bool:
        return self.count > 0


# ---------------------------------------------------------------------------------------------
# Cell parsers: each takes a non-empty cell (str, or a native value from XLSX) and returns the
# value to store, or raises ValueError with a message for the user.


def _text(value: object) -> str:
    if type(value) is str:  # the common case first: every CSV cell
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _string(max_length: int) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = _text(value)
        if len(text) > max_length:
            raise ValueError(
                _("is longer than %(max)d characters (%(length)d)")
                % {"max": max_length, "length": len(text)}
            )
        return text

    return parse


_DATE_PATTERNS = (
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$"),
)


def parse_date(value: object) -> date:
    """A date from ISO (2024-04-01), YYYY/MM/DD, 2024年4月1日 or an XLSX date cell."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    try:
        return date.fromisoformat(text)
    except ValueError:
        text = unicodedata.normalize("NFKC", text)
    for pattern in _DATE_PATTERNS:
        match = pattern.match(text)
        if match:
            year, month, day = (int(part) for part in match.groups())
            try:
                return date(year, month, day)
            except ValueError:
                break
    raise ValueError(_("is not a date (use YYYY-MM-DD or YYYY/MM/DD)"))


_NUMBER_NOISE = re.compile(r"[\s,_'¥$€£]|円|JPY|USD|EUR", re.IGNORECASE)


def parse_decimal(value: object) -> Decimal:
    """A number, allowing thousands separators and a currency sign (1,200 / ¥1,200)."""
    if isinstance(value, bool):
        raise ValueError(_("is not a number"))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    text = _text(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        text = _NUMBER_NOISE.sub("", unicodedata.normalize("NFKC", text))
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(_("is not a number")) from None
    if not number.is_finite():
        raise ValueError(_("is not a number"))
    return number


def _amount(max_digits: int, places: int) -> Callable[[object], Decimal]:
    quantum = Decimal(1).scaleb(-places)
    limit = Decimal(10) ** (max_digits - places)

    def parse(value: object) -> Decimal:
        number = parse_decimal(value).quantize(quantum, rounding=ROUND_HALF_UP)
        if number < 0:
            raise ValueError(_("must not be negative"))
        if number >= limit:
            raise ValueError(_("is too large"))
        return number

    return parse


def parse_positive_int(value: object) -> int:
    number = parse_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(_("must be a whole number"))
    if number < 1 or number > 32767:
        raise ValueError(_("must be a whole number between 1 and 32767"))
    return int(number)


def parse_count(value: object) -> int:
    number = parse_decimal(value)
    if number != number.to_integral_value() or number < 0 or number > 2_147_483_647:
        raise ValueError(_("must be a whole number, 0 or more"))
    return int(number)


def parse_discount(value: object) -> Decimal:
    """A discount as a fraction 0–1 (0.1) or a percentage (10%)."""
    text = unicodedata.normalize("NFKC", _text(value))
    percent = text.endswith("%")
    number = parse_decimal(text.rstrip("%") if percent else value)
    if percent:
        number = number / 100
    if number < 0 or number > 1:
        raise ValueError(_("must be a fraction between 0 and 1, or a percentage like 10%"))
    return number.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def parse_currency(value: object) -> str:
    text = _text(value).upper()
    if not re.fullmatch(r"[A-Z]{3}", text):
        raise ValueError(_("is not a three-letter currency code such as JPY or USD"))
    return text


def parse_email(value: object) -> str:
    text = _text(value)
    try:
        validate_email(text)
    except ValidationError:
        raise ValueError(_("is not an email address")) from None
    if len(text) > 254:
        raise ValueError(
            _("is longer than %(max)d characters (%(length)d)") % {"max": 254, "length": len(text)}
        )
    return text


def _choice(choices: type[models.TextChoices]) -> Callable[[object], str]:
    """Accept a choice's value or its label in English or Japanese, in any case."""
    known: dict[str, str] = {}

    def parse(value: object) -> str:
        if not known:
            for language in ("en", "ja"):
                with translation.override(language):
                    for choice_value, label in choices.choices:
                        known[_fold(str(label))] = str(choice_value)
            for choice_value in choices.values:
                known[_fold(str(choice_value))] = str(choice_value)
        found = known.get(_fold(_text(value)))
        if found is None:
            raise ValueError(
                _("is not one of: %(choices)s") % {"choices": ", ".join(choices.values)}
            )
        return found

    return parse


def _language(value: object) -> str:
    known = {_fold(code): code for code, _name in settings.LANGUAGES}
    known.update({"japanese": "ja", "日本語": "ja", "english": "en", "英語": "en"})
    found = known.get(_fold(_text(value)))
    if found is None:
        raise ValueError(_("is not one of: %(choices)s") % {"choices": ", ".join(known)})
    return found


# ---------------------------------------------------------------------------------------------
# Fields of each kind


@dataclass(frozen=True)
class FieldSpec:
    """A field a file column can be mapped to."""

    name: str
    label: Promise
    parse: Callable[[object], object]
    required: bool = False
    aliases: tuple[str, ...] = ()


_ACCOUNT_ALIASES = (
    "customer_id", "customer_external_id", "account", "account_external_id", "company_id",
    "顧客id", "顧客コード", "顧客番号", "取引先id", "取引先コード", "アカウントid", "企業id",
)  # fmt: skip
_CUSTOMER_NAME_ALIASES = (
    "customer", "company", "company_name", "account_name", "organization",
    "顧客名", "会社名", "企業名", "取引先名", "法人名", "顧客",
)  # fmt: skip

CUSTOMER_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("external_id", gettext_lazy("external id"), _string(100),
              aliases=("account_id", "customer_id", "id", "外部id", "顧客id", "顧客コード", "取引先id")),
    FieldSpec("name", gettext_lazy("name"), _string(200), required=True,
              aliases=("customer_name", "company", "company_name", "account_name", "顧客名",
                       "会社名", "企業名", "取引先名", "名前", "名称")),
    FieldSpec("domain", gettext_lazy("domain"), _string(200), aliases=("website", "ドメイン")),
    FieldSpec("industry", gettext_lazy("industry"), _string(100), aliases=("業種", "業界")),
    FieldSpec("employee_count", gettext_lazy("employees"), parse_count,
              aliases=("employees", "従業員数", "社員数")),
    FieldSpec("region", gettext_lazy("region"), _string(100), aliases=("地域", "エリア")),
    FieldSpec("segment", gettext_lazy("segment"), _string(100), aliases=("セグメント",)),
    FieldSpec("lifecycle_stage", gettext_lazy("lifecycle stage"), _choice(LifecycleStage),
              aliases=("stage", "ステージ", "ライフサイクル")),
    FieldSpec("touch_model", gettext_lazy("touch model"), _choice(TouchModel),
              aliases=("touch", "タッチモデル")),
    FieldSpec("churn_date", gettext_lazy("churn date"), parse_date, aliases=("解約日",)),
    FieldSpec("churn_reason", gettext_lazy("churn reason"), _string(300), aliases=("解約理由",)),
)  # fmt: skip

CONTACT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("external_id", gettext_lazy("external id"), _string(100),
              aliases=("contact_id", "外部id", "担当者id", "連絡先id")),
    FieldSpec("account_id", gettext_lazy("customer external id"), _string(100),
              aliases=_ACCOUNT_ALIASES),
    FieldSpec("customer_name", gettext_lazy("customer name"), _string(200),
              aliases=_CUSTOMER_NAME_ALIASES),
    FieldSpec("name", gettext_lazy("name"), _string(200), required=True,
              aliases=("contact_name", "full_name", "氏名", "担当者名", "名前", "担当者")),
    FieldSpec("email", gettext_lazy("email"), parse_email,
              aliases=("e-mail", "email_address", "mail", "メール", "メールアドレス")),
    FieldSpec("phone", gettext_lazy("phone"), _string(50), aliases=("tel", "電話", "電話番号")),
    FieldSpec("job_title", gettext_lazy("job title"), _string(200),
              aliases=("title", "役職", "肩書き", "部署・役職")),
    FieldSpec("role", gettext_lazy("role"), _choice(ContactRole), aliases=("役割",)),
    FieldSpec("language", gettext_lazy("language"), _language, aliases=("lang", "言語")),
    FieldSpec("product_user_id", gettext_lazy("product user id"), _string(200),
              aliases=("user_id", "ユーザーid")),
    FieldSpec("started_on", gettext_lazy("involved since"), parse_date,
              aliases=("start_date", "開始日")),
    FieldSpec("ended_on", gettext_lazy("involved until"), parse_date,
              aliases=("end_date", "終了日")),
)  # fmt: skip

SUBSCRIPTION_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("external_id", gettext_lazy("external id"), _string(100),
              aliases=("subscription_id", "contract_id", "外部id", "契約id", "契約番号")),
    FieldSpec("account_id", gettext_lazy("customer external id"), _string(100),
              aliases=_ACCOUNT_ALIASES),
    FieldSpec("customer_name", gettext_lazy("customer name"), _string(200),
              aliases=_CUSTOMER_NAME_ALIASES),
    FieldSpec("product", gettext_lazy("product"), _string(200), required=True,
              aliases=("product_code", "product_name", "製品", "商品", "プロダクト", "製品名", "商品名")),
    FieldSpec("plan", gettext_lazy("plan"), _string(200), aliases=("plan_code", "plan_name", "プラン")),
    FieldSpec("start_date", gettext_lazy("start date"), parse_date, required=True,
              aliases=("start", "starts_on", "開始日", "契約開始日", "利用開始日")),
    FieldSpec("end_date", gettext_lazy("end date"), parse_date,
              aliases=("end", "ends_on", "終了日", "契約終了日", "利用終了日")),
    FieldSpec("mrr", gettext_lazy("MRR"), _amount(14, 2), required=True,
              aliases=("monthly_amount", "月額", "月額料金", "月次売上")),
    FieldSpec("quantity", gettext_lazy("quantity"), _amount(12, 2),
              aliases=("qty", "seats", "数量", "ライセンス数")),
    FieldSpec("units", gettext_lazy("unit"), _string(50), aliases=("unit", "単位")),
    FieldSpec("bill_period_months", gettext_lazy("billing period (months)"), parse_positive_int,
              aliases=("billing_period_months", "bill_period", "請求周期", "請求周期(月)", "請求間隔")),
    FieldSpec("discount", gettext_lazy("discount"), parse_discount, aliases=("割引", "割引率")),
    FieldSpec("currency", gettext_lazy("currency"), parse_currency, aliases=("通貨",)),
    FieldSpec("status", gettext_lazy("status"), _choice(SubscriptionStatus),
              aliases=("ステータス", "状態")),
)  # fmt: skip

FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    ImportKind.CUSTOMERS: CUSTOMER_FIELDS,
    ImportKind.CONTACTS: CONTACT_FIELDS,
    ImportKind.SUBSCRIPTIONS: SUBSCRIPTION_FIELDS,
}
KINDS = tuple(str(kind) for kind in ImportKind.values)


def _fold(text: str) -> str:
    """Normalise a header or choice: full-width to half-width, case, spaces and dashes."""
    text = unicodedata.normalize("NFKC", text).strip().casefold()
    text = re.sub(r"[\s\-]+", "_", text)
    return text.replace("（", "(").replace("）", ")")


def _lookup(specs: Iterable[FieldSpec]) -> dict[str, FieldSpec]:
    by_name: dict[str, FieldSpec] = {}
    for spec in specs:
        for alias in (spec.name, str(spec.label), *spec.aliases):
            by_name.setdefault(_fold(alias), spec)
    return by_name


# ---------------------------------------------------------------------------------------------
# Reading files


@dataclass
class _Table:
    headers: list[str]
    rows: list[tuple[int, list[object]]]  # (row number in the file, cells)


def _decode(content: bytes) -> str:
    """UTF-8 (with or without BOM), else Shift_JIS as Japanese Excel writes it (cp932)."""
    if content.startswith(b"\xef\xbb\xbf"):
        return content[3:].decode("utf-8")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp932")
    except UnicodeDecodeError:
        raise ImportRejectedError(
            [RowError(None, None, "", _("The file is neither UTF-8 nor Shift_JIS text."))]
        ) from None


def _is_xlsx(content: bytes, filename: str) -> bool:
    return filename.lower().endswith((".xlsx", ".xlsm")) or content.startswith(b"PK\x03\x04")


def _read_csv(content: bytes) -> _Table:
    text = _decode(content)
    sample = text[:4096]
    delimiter = ","
    first_line = sample.split("\n", 1)[0]
    if first_line.count("\t") > first_line.count(",") and first_line.count("\t") > 0:
        delimiter = "\t"
    elif first_line.count(";") > first_line.count(",") and first_line.count(";") > 0:
        delimiter = ";"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    headers: list[str] | None = None
    rows: list[tuple[int, list[object]]] = []
    try:
        for number, record in enumerate(reader, start=1):
            if headers is None:
                headers = [cell.strip() for cell in record]
                continue
            if any(cell.strip() for cell in record):
                rows.append((number, list(record)))
    except csv.Error as exc:
        raise ImportRejectedError(
            [RowError(reader.line_num, None, "", _("The CSV cannot be read: %(e)s") % {"e": exc})]
        ) from None
    return _Table(headers or [], rows)


def _read_xlsx(content: bytes) -> _Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged file
        raise ImportRejectedError(
            [RowError(None, None, "", _("The file is not a readable XLSX workbook."))]
        ) from None
    try:
        sheet = workbook.worksheets[0]
        headers: list[str] | None = None
        rows: list[tuple[int, list[object]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = ["" if cell is None else cell for cell in values]
            if headers is None:
                if not any(_text(cell) for cell in cells):
                    continue
                headers = [_text(cell) for cell in cells]
                continue
            if any(_text(cell) for cell in cells):
                rows.append((number, cells))
    finally:
        workbook.close()
    # Trailing columns without a header are formatting leftovers, not data.
    headers = headers or []
    while headers and not headers[-1]:
        headers.pop()
    return _Table(headers, rows)


def read_table(*, content: bytes, filename: str) -> _Table:
    """The header and the non-empty rows of a CSV or XLSX file; raises ImportRejectedError."""
    table = _read_xlsx(content) if _is_xlsx(content, filename) else _read_csv(content)
    if not any(table.headers):
        raise ImportRejectedError(
            [RowError(None, None, "", _("The file is empty or has no header."))]
        )
    return table


# ---------------------------------------------------------------------------------------------
# Columns to fields


@dataclass(frozen=True)
class ColumnMapping:
    """Which column index feeds which field; the columns left out."""

    by_field: dict[str, int]
    ignored: tuple[str, ...]


def suggest_mapping(*, kind: str, headers: Sequence[str]) -> dict[str, str]:
    """The field each header maps to automatically ("" when none)."""
    lookup = _lookup(FIELDS[kind])
    taken: set[str] = set()
    result: dict[str, str] = {}
    for header in headers:
        spec = lookup.get(_fold(header))
        if spec is not None and spec.name not in taken:
            taken.add(spec.name)
            result[header] = spec.name
        else:
            result[header] = ""
    return result


def map_columns(
    *, kind: str, headers: Sequence[str], mapping: Mapping[str, str] | None, errors: _Errors
) -> ColumnMapping:
    """Combine the explicit mapping (column -> field, "" to ignore) with the automatic one."""
    specs = FIELDS[kind]
    lookup = _lookup(specs)
    folded_headers = [_fold(header) for header in headers]
    seen: dict[str, int] = {}
    for position, folded in enumerate(folded_headers):
        if folded and folded in seen:
            errors.add(1, headers[position], headers[position], _("This column appears twice."))
        seen.setdefault(folded, position)

    explicit: dict[int, str] = {}  # column index -> field name or "" (ignore)
    for column, target in (mapping or {}).items():
        found = headers.index(column) if column in headers else seen.get(_fold(column))
        if found is None:
            errors.add(
                1, column, column, _("The mapping names a column that the file does not have.")
            )
            continue
        if _fold(target) in IGNORE:
            explicit[found] = ""
            continue
        spec = lookup.get(_fold(target))
        if spec is None:
            errors.add(
                1, column, target,
                _("Unknown field %(field)s; fields are: %(fields)s")
                % {"field": target, "fields": ", ".join(s.name for s in specs)},
            )  # fmt: skip
            continue
        if spec.name in explicit.values():
            errors.add(1, column, target, _("Two columns are mapped to the same field."))
            continue
        explicit[found] = spec.name

    by_field: dict[str, int] = {name: index for index, name in explicit.items() if name}
    ignored: list[str] = []
    for index, header in enumerate(headers):
        if index in explicit:
            if not explicit[index] and header:
                ignored.append(header)
            continue
        spec = lookup.get(folded_headers[index])
        if spec is None or spec.name in by_field:
            if header:
                ignored.append(header)
            continue
        by_field[spec.name] = index

    for spec in specs:
        if spec.required and spec.name not in by_field:
            errors.add(
                None, spec.name, "",
                _("The required column %(field)s is missing (map a column to it).")
                % {"field": spec.name},
            )  # fmt: skip
    if kind in (ImportKind.CONTACTS, ImportKind.SUBSCRIPTIONS) and not (
        {"account_id", "customer_name"} & by_field.keys()
    ):
        errors.add(
            None, "account_id", "",
            _("The file needs an account_id or a customer_name column to name the customer."),
        )  # fmt: skip
    return ColumnMapping(by_field=by_field, ignored=tuple(ignored))


# ---------------------------------------------------------------------------------------------
# Parsed rows


@dataclass
class _Row:
    line: int
    values: dict[str, Any]


def _parse_rows(
    *,
    table: _Table,
    kind: str,
    columns: ColumnMapping,
    errors: _Errors,
    progress: Callable[[int], None],
) -> list[_Row]:
    specs = [
        (spec, columns.by_field[spec.name])
        for spec in FIELDS[kind]
        if spec.name in columns.by_field
    ]
    headers = table.headers
    parsed: list[_Row] = []
    for done, (line, cells) in enumerate(table.rows, start=1):
        values: dict[str, Any] = {}
        width = len(cells)
        for spec, index in specs:
            raw = cells[index] if index < width else ""
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if spec.required:
                    errors.add(line, headers[index], "", _("is required"))
                values[spec.name] = None
                continue
            try:
                values[spec.name] = spec.parse(raw)
            except ValueError as exc:
                errors.add(line, headers[index], _text(raw), str(exc))
                values[spec.name] = None
        if len(cells) > len(headers) and any(_text(cell) for cell in cells[len(headers) :]):
            errors.add(line, None, "", _("The row has more cells than the header has columns."))
        parsed.append(_Row(line, values))
        if done % BATCH_SIZE == 0:
            progress(done)
    progress(len(table.rows))
    return parsed


def _column(columns: ColumnMapping, headers: Sequence[str], name: str) -> str:
    index = columns.by_field.get(name)
    return headers[index] if index is not None and index < len(headers) else name


def _earlier_line[K](seen: dict[K, int], key: K, line: int) -> int | None:
    """The line that already had ``key`` in this file, or None after remembering ``line``."""
    earlier = seen.get(key)
    if earlier is None:
        seen[key] = line
    return earlier


def _chunks[T](items: Sequence[T], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# ---------------------------------------------------------------------------------------------
# Matching customers and products (shared by contacts and subscriptions)


class _Customers:
    """Finds the customer a contact or subscription row names; plans new ones for the rest."""

    def __init__(self, rows: Sequence[_Row]) -> None:
        account_ids = sorted({r.values["account_id"] for r in rows if r.values.get("account_id")})
        names = sorted(
            {
                r.values["customer_name"]
                for r in rows
                if not r.values.get("account_id") and r.values.get("customer_name")
            }
        )
        self.by_external_id: dict[str, Customer] = {}
        for chunk in _chunks(account_ids):
            for pk, external_id in Customer.objects.filter(external_id__in=chunk).values_list(
                "pk", "external_id"
            ):
                self.by_external_id[str(external_id)] = Customer(pk=pk, external_id=external_id)
        self.by_name: dict[str, list[Customer]] = {}
        for chunk in _chunks(names):
            for pk, name in Customer.objects.filter(name__in=chunk).values_list("pk", "name"):
                self.by_name.setdefault(name, []).append(Customer(pk=pk, name=name))
        self.new: list[Customer] = []

    def resolve(self, row: _Row, errors: _Errors, column: str) -> Customer | None:
        account_id: str | None = row.values.get("account_id")
        name: str | None = row.values.get("customer_name")
        if account_id:
            customer = self.by_external_id.get(account_id)
            if customer is None:
                customer = Customer(external_id=account_id, name=name or account_id)
                self.by_external_id[account_id] = customer
                self.new.append(customer)
            return customer
        if name:
            found = self.by_name.get(name, [])
            if len(found) > 1:
                errors.add(
                    row.line, column, name,
                    _("%(n)d customers have this name; give an account_id instead.")
                    % {"n": len(found)},
                )  # fmt: skip
                return None
            if not found:
                customer = Customer(name=name)
                self.by_name[name] = [customer]
                self.new.append(customer)
                return customer
            return found[0]
        errors.add(row.line, column, "", _("names no customer (account_id or customer_name)"))
        return None


class _Catalog:
    """Products matched by code or name (case-insensitive) and their plans; new ones planned."""

    def __init__(self) -> None:
        # Codes first, so that a code wins over another product's equal name.
        products = list(Product.objects.only("pk", "code", "name"))
        self.products: dict[str, Product] = {_fold(p.code): p for p in products}
        for product in products:
            self.products.setdefault(_fold(product.name), product)
        plans = list(Plan.objects.only("pk", "product_id", "code", "name"))
        self.plans: dict[tuple[int, str], Plan] = {(p.product_id, _fold(p.code)): p for p in plans}
        for plan in plans:
            self.plans.setdefault((plan.product_id, _fold(plan.name)), plan)
        self.new_plans_by_product: dict[int, dict[str, Plan]] = {}
        self.new_products: list[Product] = []
        self.new_plans: list[tuple[Product, Plan]] = []

    def product(self, value: str) -> Product:
        key = _fold(value)
        product = self.products.get(key)
        if product is None:
            product = Product(code=value[:100], name=value)
            self.products[key] = product
            self.new_products.append(product)
        return product

    def plan(self, product: Product, value: str) -> Plan:
        key = _fold(value)
        if product.pk is not None and (product.pk, key) in self.plans:
            return self.plans[(product.pk, key)]
        planned = self.new_plans_by_product.setdefault(id(product), {})
        plan = planned.get(key)
        if plan is None:
            plan = Plan(code=value[:100], name=value)
            planned[key] = plan
            self.new_plans.append((product, plan))
        return plan

    def save_new(self) -> None:
        Product.objects.bulk_create(self.new_products, batch_size=BATCH_SIZE)
        for product, plan in self.new_plans:
            plan.product_id = product.pk
        Plan.objects.bulk_create([plan for _p, plan in self.new_plans], batch_size=BATCH_SIZE)


def _save_new_customers(customers: list[Customer], progress: Callable[[int], None]) -> None:
    """Insert the customers a file names but the database lacks, and give them their ids."""
    if not customers:
        return
    rows = [{"external_id": c.external_id, "name": c.name} for c in customers]
    _insert_rows(Customer, rows, progress, 0)
    # Customers named only by name had no namesake in the database (else they were matched).
    by_external_id = {c.external_id: c for c in customers if c.external_id}
    by_name = {c.name: c for c in customers if not c.external_id}
    for chunk in _chunks(list(by_external_id)):
        for pk, external_id in Customer.objects.filter(external_id__in=chunk).values_list(
            "pk", "external_id"
        ):
            by_external_id[str(external_id)].pk = pk
    for chunk in _chunks(list(by_name)):
        for pk, name in Customer.objects.filter(
            name__in=chunk, external_id__isnull=True
        ).values_list("pk", "name"):
            by_name[name].pk = pk


# ---------------------------------------------------------------------------------------------
# Writing rows. Values are validated and already of each column's Python type, so rows go to
# the database with one executemany per batch: Django's bulk_create/bulk_update spend most of
# a large import compiling SQL per row.

Row = dict[str, Any]


def _adapters(model: type[models.Model]) -> dict[str, Callable[[Any], Any]]:
    ops = connection.ops
    adapters: dict[str, Callable[[Any], Any]] = {}
    for model_field in model._meta.concrete_fields:
        if isinstance(model_field, models.DateTimeField):
            adapters[model_field.attname] = ops.adapt_datetimefield_value
        elif isinstance(model_field, models.JSONField):
            adapters[model_field.attname] = partial(
                model_field.get_db_prep_save, connection=connection
            )
    return adapters


def _insert_rows(
    model: type[models.Model], rows: Sequence[Row], progress: Callable[[int], None], done: int
) -> int:
    """INSERT the rows (attname -> value; missing columns take the field's default)."""
    if not rows:
        return done
    now = timezone.now()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults: dict[str, Any] = {}
    for model_field in fields:
        auto = getattr(model_field, "auto_now", False) or getattr(
            model_field, "auto_now_add", False
        )
        defaults[model_field.attname] = now if auto else model_field.get_default()
    attnames = [f.attname for f in fields]
    adapters = _adapters(model)
    for attname, adapt in adapters.items():
        defaults[attname] = adapt(defaults[attname])
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608 - names from the model, values bound
        quote(model._meta.db_table),
        ", ".join(quote(str(f.column)) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    with connection.cursor() as cursor:
        for batch in _chunks(rows, BATCH_SIZE):
            params = []
            for row in batch:
                values = {**defaults, **row}
                for attname in adapters.keys() & row.keys():
                    values[attname] = adapters[attname](row[attname])
                params.append([values[attname] for attname in attnames])
            cursor.executemany(sql, params)
            done += len(batch)
            progress(done)
    return done


def _update_rows(
    model: type[models.Model],
    updates: Sequence[tuple[int, Row]],
    progress: Callable[[int], None],
    done: int,
) -> int:
    """UPDATE each row by primary key with its changed columns (and updated_at)."""
    now = timezone.now()
    adapters = _adapters(model)
    quote = connection.ops.quote_name
    columns = {f.attname: str(f.column) for f in model._meta.concrete_fields}
    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    for pk, changes in updates:
        values = {**changes, "updated_at": now}
        names = tuple(sorted(values))
        params = [adapters[n](values[n]) if n in adapters else values[n] for n in names]
        groups.setdefault(names, []).append([*params, pk])
    with connection.cursor() as cursor:
        for names, all_params in groups.items():
            sql = "UPDATE {} SET {} WHERE {} = %s".format(  # noqa: S608 - names from the model
                quote(model._meta.db_table),
                ", ".join(f"{quote(columns[n])} = %s" for n in names),
                quote(str(model._meta.pk.column)),
            )
            for batch in _chunks(all_params, BATCH_SIZE):
                cursor.executemany(sql, batch)
                done += len(batch)
                progress(done)
    return done


# ---------------------------------------------------------------------------------------------
# The three importers. Each plans in memory (reads only), then writes when asked.

Ref = models.Model | None


@dataclass
class _Plan:
    """The rows to create (with the customer, product, plan they point to) and to update."""

    write: Callable[["_Plan", User | None, Callable[[int], None]], None]
    created: list[Row] = field(default_factory=list)
    # Per created row: the customer/product/plan it belongs to, saved (or created) before it.
    created_refs: list[tuple[Ref, ...]] = field(default_factory=list)
    # (primary key, {attname: [old, new]}); a new value may be a customer/product/plan to save.
    updated: list[tuple[int, dict[str, list[Any]]]] = field(default_factory=list)
    unchanged: int = 0
    customers: "_Customers | None" = None
    catalog: "_Catalog | None" = None

    @property
    def customers_created(self) -> int:
        return len(self.customers.new) if self.customers else 0

    @property
    def products_created(self) -> int:
        return len(self.catalog.new_products) if self.catalog else 0

    @property
    def plans_created(self) -> int:
        return len(self.catalog.new_plans) if self.catalog else 0

    def compare(self, existing: Row, attributes: Row, refs: dict[str, Ref]) -> None:
        """Record an update of the existing row, or count it unchanged."""
        changes = {
            attname: [existing[attname], new]
            for attname, new in attributes.items()
            if existing[attname] != new
        }
        for attname, ref in refs.items():
            new_id = ref.pk if ref is not None else None
            if (ref is not None and new_id is None) or existing[attname] != new_id:
                changes[attname] = [existing[attname], ref]
        if changes:
            self.updated.append((existing["id"], changes))
        else:
            self.unchanged += 1

    def resolved_updates(self) -> list[tuple[int, Row, dict[str, list[Any]]]]:
        """(pk, new values, changes with ids) once new customers/products/plans have ids."""
        resolved = []
        for pk, changes in self.updated:
            plain = {
                attname: [old, new.pk if isinstance(new, models.Model) else new]
                for attname, (old, new) in changes.items()
            }
            resolved.append((pk, {attname: new for attname, (_o, new) in plain.items()}, plain))
        return resolved


_SUBSCRIPTION_COLUMNS = {
    # file field -> model attribute
    "external_id": "external_id",
    "start_date": "start_date",
    "end_date": "end_date",
    "mrr": "mrr",
    "quantity": "quantity",
    "units": "unit",
    "bill_period_months": "bill_period_months",
    "discount": "discount",
    "currency": "currency",
    "status": "status",
}
_SUBSCRIPTION_DEFAULTS: dict[str, object] = {
    "quantity": Decimal(1),
    "unit": "",
    "bill_period_months": 1,
    "discount": Decimal(0),
    "status": str(SubscriptionStatus.ACTIVE),
}


def _existing_ids(customers: "_Customers") -> list[int]:
    ids = {c.pk for c in customers.by_external_id.values() if c.pk is not None}
    ids |= {c.pk for found in customers.by_name.values() for c in found if c.pk is not None}
    return sorted(ids)


def _plan_subscriptions(
    *, rows: Sequence[_Row], columns: ColumnMapping, headers: Sequence[str], errors: _Errors
) -> _Plan:
    present = set(columns.by_field)
    customer_column = _column(
        columns, headers, "account_id" if "account_id" in present else "customer_name"
    )
    customers = _Customers(rows)
    catalog = _Catalog()

    external_ids = sorted({r.values["external_id"] for r in rows if r.values.get("external_id")})
    fields = ["id", "customer_id", "product_id", "plan_id", *_SUBSCRIPTION_COLUMNS.values()]
    by_external_id: dict[str, Row] = {}
    by_natural: dict[tuple[int, int, date], Row] = {}

    def remember(subscription: Row) -> None:
        if subscription["external_id"]:
            by_external_id[subscription["external_id"]] = subscription
        key = (subscription["customer_id"], subscription["product_id"], subscription["start_date"])
        by_natural[key] = subscription

    for chunk in _chunks(_existing_ids(customers)):
        for subscription in Subscription.objects.filter(customer_id__in=chunk).values(*fields):
            remember(subscription)
    missing = [ext for ext in external_ids if ext not in by_external_id]
    for ext_chunk in _chunks(missing):
        for subscription in Subscription.objects.filter(external_id__in=ext_chunk).values(*fields):
            remember(subscription)

    plan = _Plan(write=_write_subscriptions, customers=customers, catalog=catalog)
    seen_natural: dict[tuple[int, int, date], int] = {}
    seen_external: dict[str, int] = {}
    base_currency = str(settings.KIZUNA_BASE_CURRENCY)
    start_column = _column(columns, headers, "start_date")
    end_column = _column(columns, headers, "end_date")
    ext_column = _column(columns, headers, "external_id")
    mapped = [(name, attname) for name, attname in _SUBSCRIPTION_COLUMNS.items() if name in present]

    for row in rows:
        values = row.values
        start: date | None = values.get("start_date")
        end: date | None = values.get("end_date")
        if start and end and end < start:
            errors.add(
                row.line, end_column, end.isoformat(), _("The end date is before the start date.")
            )
        customer = customers.resolve(row, errors, customer_column)
        product_value: str | None = values.get("product")
        if customer is None or not product_value or start is None or row.line in errors.bad_rows:
            continue
        product = catalog.product(product_value)
        plan_obj = catalog.plan(product, values["plan"]) if values.get("plan") else None

        natural_key = (id(customer), id(product), start)
        ext: str | None = values.get("external_id")
        if (earlier := _earlier_line(seen_natural, natural_key, row.line)) is not None:
            errors.add(
                row.line, start_column, start.isoformat(),
                _("Row %(row)d already has this customer, product and start date.")
                % {"row": earlier},
            )  # fmt: skip
            continue
        if ext and (earlier := _earlier_line(seen_external, ext, row.line)) is not None:
            errors.add(
                row.line, ext_column, ext,
                _("Row %(row)d already has this external id.") % {"row": earlier},
            )  # fmt: skip
            continue

        existing = by_external_id.get(ext) if ext else None
        same_start = (
            by_natural.get((customer.pk, product.pk, start))
            if customer.pk is not None and product.pk is not None
            else None
        )
        if existing is None and same_start is not None:
            if ext and same_start["external_id"] and same_start["external_id"] != ext:
                errors.add(
                    row.line, ext_column, ext,
                    _("Subscription %(other)s already has this customer, product and start date.")
                    % {"other": same_start["external_id"]},
                )  # fmt: skip
                continue
            existing = same_start
        elif existing is not None and same_start is not None and same_start is not existing:
            errors.add(
                row.line, start_column, start.isoformat(),
                _("Another subscription of this customer and product starts on this date."),
            )  # fmt: skip
            continue

        attributes: Row = {attname: values[name] for name, attname in mapped}
        if "external_id" in attributes and not attributes["external_id"]:
            # An empty external id cell keeps the one a row already has.
            del attributes["external_id"]
        for attname, default in _SUBSCRIPTION_DEFAULTS.items():
            if attname in attributes and attributes[attname] is None:
                attributes[attname] = default
        if "currency" in attributes and attributes["currency"] is None:
            attributes["currency"] = base_currency

        if existing is None:
            plan.created.append({**_SUBSCRIPTION_DEFAULTS, "currency": base_currency, **attributes})
            plan.created_refs.append((customer, product, plan_obj))
            continue
        refs: dict[str, Ref] = {"customer_id": customer, "product_id": product}
        if "plan" in present:
            refs["plan_id"] = plan_obj
        plan.compare(existing, attributes, refs)
    return plan


# Changes to these columns are logged under the relation's name.
_REFERENCES = {"customer_id": "customer", "product_id": "product", "plan_id": "plan"}


def _write_subscriptions(plan: _Plan, actor: User | None, progress: Callable[[int], None]) -> None:
    assert plan.customers is not None
    assert plan.catalog is not None
    _save_new_customers(plan.customers.new, lambda _done: None)
    plan.catalog.save_new()
    for row, (customer, product, plan_obj) in zip(plan.created, plan.created_refs, strict=True):
        assert customer is not None
        assert product is not None
        row["customer_id"] = customer.pk
        row["product_id"] = product.pk
        row["plan_id"] = plan_obj.pk if plan_obj is not None else None
    done = _insert_rows(Subscription, plan.created, progress, 0)

    updates = plan.resolved_updates()
    _update_rows(Subscription, [(pk, values) for pk, values, _c in updates], progress, done)
    now = timezone.now()
    history = [
        SubscriptionChange(
            subscription_id=pk,
            changed_at=now,
            actor=actor,
            source="import",
            changes={
                _REFERENCES.get(attname, attname): [_json_value(old), _json_value(new)]
                for attname, (old, new) in changes.items()
            },
        )
        for pk, _values, changes in updates
    ]
    SubscriptionChange.objects.bulk_create(history, batch_size=BATCH_SIZE)
    _lower_first_start_dates()


def _lower_first_start_dates() -> None:
    """Set each customer's first start date to its earliest subscription start, if earlier."""
    earliest = (
        Subscription.objects.filter(customer=OuterRef("pk"))
        .order_by()
        .values("customer")
        .annotate(first=Min("start_date"))
        .values("first")
    )
    (
        Customer.objects.annotate(earliest=Subquery(earliest))
        .filter(earliest__isnull=False)
        .filter(Q(first_start_date__isnull=True) | Q(first_start_date__gt=F("earliest")))
        .update(first_start_date=Subquery(earliest))
    )


_CUSTOMER_ATTRIBUTES = (
    "external_id", "name", "domain", "industry", "employee_count", "region", "segment",
    "lifecycle_stage", "touch_model", "churn_date", "churn_reason",
)  # fmt: skip
_CUSTOMER_TEXT = {"domain", "industry", "region", "segment", "churn_reason"}


def _plan_customers(
    *, rows: Sequence[_Row], columns: ColumnMapping, headers: Sequence[str], errors: _Errors
) -> _Plan:
    present = set(columns.by_field)
    external_ids = sorted({r.values["external_id"] for r in rows if r.values.get("external_id")})
    names = sorted({r.values["name"] for r in rows if r.values.get("name")})
    fields = ["id", *_CUSTOMER_ATTRIBUTES]
    by_external_id: dict[str, Row] = {}
    by_name: dict[str, list[Row]] = {}
    for chunk in _chunks(external_ids):
        for customer in Customer.objects.filter(external_id__in=chunk).values(*fields):
            by_external_id[str(customer["external_id"])] = customer
    for chunk in _chunks(names):
        for customer in Customer.objects.filter(name__in=chunk).values(*fields):
            by_name.setdefault(customer["name"], []).append(customer)

    plan = _Plan(write=_write_customers)
    seen: dict[tuple[str, str], int] = {}
    ext_column = _column(columns, headers, "external_id")
    name_column = _column(columns, headers, "name")
    for row in rows:
        values = row.values
        ext: str | None = values.get("external_id")
        name: str | None = values.get("name")
        if row.line in errors.bad_rows or not name:
            continue
        key = ("external_id", ext) if ext else ("name", name)
        if key in seen:
            errors.add(
                row.line, ext_column if ext else name_column, key[1],
                _("Row %(row)d already has this customer.") % {"row": seen[key]},
            )  # fmt: skip
            continue
        seen[key] = row.line
        existing = by_external_id.get(ext) if ext else None
        if existing is None:
            # Without a match by external id, a customer of the same name (that has no external
            # id of its own when the row gives one) is the one meant.
            same_name = [c for c in by_name.get(name, []) if not ext or not c["external_id"]]
            if len(same_name) > 1:
                errors.add(
                    row.line, name_column, name,
                    _("%(n)d customers have this name; add an external_id column.")
                    % {"n": len(same_name)},
                )  # fmt: skip
                continue
            existing = same_name[0] if same_name else None
        attributes: Row = {a: values[a] for a in _CUSTOMER_ATTRIBUTES if a in present}
        for attname in _CUSTOMER_TEXT & attributes.keys():
            attributes[attname] = attributes[attname] or ""
        for attname in ("external_id", "lifecycle_stage", "touch_model"):
            if attname in attributes and not attributes[attname]:
                del attributes[attname]
        if existing is None:
            plan.created.append(attributes)
        else:
            plan.compare(existing, attributes, {})
    return plan


def _write_customers(plan: _Plan, actor: User | None, progress: Callable[[int], None]) -> None:
    done = _insert_rows(Customer, plan.created, progress, 0)
    updates = [(pk, values) for pk, values, _c in plan.resolved_updates()]
    _update_rows(Customer, updates, progress, done)


_CONTACT_ATTRIBUTES = (
    "external_id", "name", "email", "phone", "job_title", "role", "language",
    "product_user_id", "started_on", "ended_on",
)  # fmt: skip
_CONTACT_TEXT = {"email", "phone", "job_title", "product_user_id"}


def _plan_contacts(
    *, rows: Sequence[_Row], columns: ColumnMapping, headers: Sequence[str], errors: _Errors
) -> _Plan:
    present = set(columns.by_field)
    customer_column = _column(
        columns, headers, "account_id" if "account_id" in present else "customer_name"
    )
    email_column = _column(columns, headers, "email")
    ext_column = _column(columns, headers, "external_id")
    customers = _Customers(rows)
    external_ids = sorted({r.values["external_id"] for r in rows if r.values.get("external_id")})
    fields = ["id", "customer_id", *_CONTACT_ATTRIBUTES]
    by_external_id: dict[str, Row] = {}
    by_email: dict[tuple[int, str], Row] = {}

    def remember(contact: Row) -> None:
        if contact["external_id"]:
            by_external_id[contact["external_id"]] = contact
        if contact["email"]:
            by_email[(contact["customer_id"], contact["email"].casefold())] = contact

    for chunk in _chunks(_existing_ids(customers)):
        for contact in Contact.objects.filter(customer_id__in=chunk).values(*fields):
            remember(contact)
    for ext_chunk in _chunks([e for e in external_ids if e not in by_external_id]):
        for contact in Contact.objects.filter(external_id__in=ext_chunk).values(*fields):
            remember(contact)

    plan = _Plan(write=_write_contacts, customers=customers)
    seen_email: dict[tuple[int, str], int] = {}
    seen_external: dict[str, int] = {}
    for row in rows:
        values = row.values
        customer = customers.resolve(row, errors, customer_column)
        ext: str | None = values.get("external_id")
        email: str | None = values.get("email")
        if customer is None or row.line in errors.bad_rows:
            continue
        if not ext and not email:
            errors.add(
                row.line, email_column, "",
                _("A contact without an external id needs an email to be matched on import."),
            )  # fmt: skip
            continue
        email_key = (id(customer), (email or "").casefold())
        if email and (earlier := _earlier_line(seen_email, email_key, row.line)) is not None:
            errors.add(
                row.line, email_column, email,
                _("Row %(row)d already has this email for this customer.") % {"row": earlier},
            )  # fmt: skip
            continue
        if ext and (earlier := _earlier_line(seen_external, ext, row.line)) is not None:
            errors.add(
                row.line, ext_column, ext,
                _("Row %(row)d already has this external id.") % {"row": earlier},
            )  # fmt: skip
            continue
        existing = by_external_id.get(ext) if ext else None
        same_email = (
            by_email.get((customer.pk, email.casefold()))
            if email and customer.pk is not None
            else None
        )
        if existing is None:
            if same_email is not None and ext and same_email["external_id"]:
                errors.add(
                    row.line, email_column, email,
                    _("Contact %(other)s of this customer already has this email.")
                    % {"other": same_email["external_id"]},
                )  # fmt: skip
                continue
            existing = same_email
        elif same_email is not None and same_email is not existing:
            errors.add(
                row.line, email_column, email,
                _("Another contact of this customer already has this email."),
            )  # fmt: skip
            continue
        attributes: Row = {a: values[a] for a in _CONTACT_ATTRIBUTES if a in present}
        for attname in _CONTACT_TEXT & attributes.keys():
            attributes[attname] = attributes[attname] or ""
        for attname in ("external_id", "role", "language"):
            if attname in attributes and not attributes[attname]:
                del attributes[attname]
        if existing is None:
            plan.created.append(attributes)
            plan.created_refs.append((customer,))
        else:
            plan.compare(existing, attributes, {"customer_id": customer})
    return plan


def _write_contacts(plan: _Plan, actor: User | None, progress: Callable[[int], None]) -> None:
    assert plan.customers is not None
    _save_new_customers(plan.customers.new, lambda _done: None)
    for row, (customer,) in zip(plan.created, plan.created_refs, strict=True):
        assert customer is not None
        row["customer_id"] = customer.pk
    done = _insert_rows(Contact, plan.created, progress, 0)
    updates = [(pk, values) for pk, values, _c in plan.resolved_updates()]
    _update_rows(Contact, updates, progress, done)


_PLANNERS = {
    ImportKind.CUSTOMERS: _plan_customers,
    ImportKind.CONTACTS: _plan_contacts,
    ImportKind.SUBSCRIPTIONS: _plan_subscriptions,
}


# ---------------------------------------------------------------------------------------------
# The entry points


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(
            _("Unknown import kind %(kind)s; choose one of: %(kinds)s")
            % {"kind": kind, "kinds": ", ".join(KINDS)}
        )


def import_file(
    *,
    kind: str,
    content: bytes,
    filename: str,
    mapping: Mapping[str, str] | None = None,
    actor: User | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a CSV or XLSX file of customers, contacts or subscriptions, all rows or none.

    ``mapping`` maps file columns to fields ("" ignores a column); other columns map by name or
    alias. ``progress(done, total)`` is called as rows are validated and then written (total is
    twice the number of rows). Returns the report; when it has errors nothing was written.
    Raises ValueError for an unknown kind.
    """
    _check_kind(kind)
    errors = _Errors()
    try:
        table = read_table(content=content, filename=filename)
    except ImportRejectedError as rejected:
        return ImportReport(
            kind=kind, errors=tuple(rejected.errors), error_count=len(rejected.errors)
        )
    total = len(table.rows) * 2

    def report_progress(done: int) -> None:
        if progress is not None:
            progress(min(done, total), total)

    columns = map_columns(kind=kind, headers=table.headers, mapping=mapping, errors=errors)
    if errors:
        return _rejected(kind, table, columns, errors)
    rows = _parse_rows(
        table=table, kind=kind, columns=columns, errors=errors, progress=report_progress
    )
    plan = _PLANNERS[ImportKind(kind)](
        rows=rows, columns=columns, headers=table.headers, errors=errors
    )
    if errors:
        return _rejected(kind, table, columns, errors)
    assert plan.write is not None
    try:
        with transaction.atomic():
            plan.write(plan, actor, lambda done: report_progress(len(table.rows) + done))
    except IntegrityError as exc:
        errors.add(
            None, None, "",
            _("The database refused the file (%(e)s); nothing was imported.") % {"e": exc},
        )  # fmt: skip
        return _rejected(kind, table, columns, errors)
    report_progress(total)
    return ImportReport(
        kind=kind,
        rows=len(table.rows),
        created=len(plan.created),
        updated=len(plan.updated),
        unchanged=plan.unchanged,
        customers_created=plan.customers_created,
        products_created=plan.products_created,
        plans_created=plan.plans_created,
        ignored_columns=columns.ignored,
    )


def _rejected(kind: str, table: _Table, columns: ColumnMapping, errors: _Errors) -> ImportReport:
    ordered = sorted(errors.items, key=lambda e: e.row if e.row is not None else -1)
    return ImportReport(
        kind=kind,
        rows=len(table.rows),
        errors=tuple(ordered),
        error_count=errors.count,
        ignored_columns=columns.ignored,
    )


@dataclass(frozen=True)
class ImportPreview:
    """What the preview page shows: columns with their suggested field, and the first rows."""

    kind: str
    headers: tuple[str, ...]
    suggested: dict[str, str]
    rows: tuple[tuple[str, ...], ...]
    row_count: int
    fields: tuple[FieldSpec, ...]
    errors: tuple[RowError, ...] = ()


def preview_file(
    *, kind: str, content: bytes, filename: str, limit: int = PREVIEW_ROWS
) -> ImportPreview:
    """The file's columns, the field each maps to automatically, and its first rows."""
    _check_kind(kind)
    try:
        table = read_table(content=content, filename=filename)
    except ImportRejectedError as rejected:
        return ImportPreview(kind, (), {}, (), 0, FIELDS[kind], tuple(rejected.errors))
    width = len(table.headers)
    rows = tuple(
        tuple(_text(cells[i]) if i < len(cells) else "" for i in range(width))
        for _line, cells in table.rows[:limit]
    )
    return ImportPreview(
        kind=kind,
        headers=tuple(table.headers),
        suggested=suggest_mapping(kind=kind, headers=table.headers),
        rows=rows,
        row_count=len(table.rows),
        fields=FIELDS[kind],
    )


def create_import_job(
    *,
    kind: str,
    filename: str,
    content: bytes,
    created_by: User | None,
    mapping: Mapping[str, str] | None = None,
) -> ImportJob:
    """Keep an uploaded file until it is confirmed (the UI) or imported at once (CLI, API)."""
    _check_kind(kind)
    return ImportJob.objects.create(
        kind=kind,
        filename=filename[:255],
        content=content,
        mapping=dict(mapping or {}),
        created_by=created_by,
    )


def run_import_job(
    *,
    job: ImportJob,
    actor: User | None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a stored file and record the outcome on the job (also when rejected)."""
    if mapping is not None:
        job.mapping = dict(mapping)
    report = import_file(
        kind=job.kind,
        content=bytes(job.content),
        filename=job.filename,
        mapping=job.mapping,
        actor=actor,
        progress=progress,
    )
    job.status = ImportStatus.SUCCEEDED if report.ok else ImportStatus.FAILED
    job.report = report.to_dict()
    job.finished_at = timezone.now()
    job.save(update_fields=["mapping", "status", "report", "finished_at"])
    return report


def import_and_record(
    *,
    kind: str,
    content: bytes,
    filename: str,
    actor: User | None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> tuple[ImportJob, ImportReport]:
    """Store the file as a job and import it at once (the CLI and the API)."""
    job = create_import_job(
        kind=kind, filename=filename, content=content, created_by=actor, mapping=mapping
    )
    report = run_import_job(job=job, actor=actor, progress=progress)
    return job, report


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["Company Name=name", "Notes="]`` -> {"Company Name": "name", "Notes": ""}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.rpartition("=")
        if not sep or not column.strip():
            raise ValueError(
                _("A mapping is written column=field (got %(pair)s).") % {"pair": pair}
            )
        mapping[column.strip()] = target.strip()
    return mapping
