"""Carrier SMSC profiles: how the simulated SKT, KT and LG U+ links differ.

A :class:`CarrierProfile` is one carrier's behaviour as data (style guide §9):
message-id format, receipt format, limits per bind and per account, receipt
timing and the result-code mix. The built-in profiles (:data:`BUILTIN_PROFILES`)
are the defaults; ``conf/simulators.toml`` lists every key with the same values
and a comment, and a test keeps the two identical.

Where the profiles differ, they differ as real SMSCs do (digest §9,
"Correlating a receipt with its submit"):

======================  =============  ==================  ====================
key                     skt            kt                  lgu
======================  =============  ==================  ====================
submit_sm_resp id       decimal        8 hex, upper case   UUID-like, lower
receipt text ``id:``    same decimal   same number in      same UUID, UPPER
                                       DECIMAL, 10 digits
receipt dates           10 digits      12 digits           14 digits
receipt state TLVs      yes            no (text only)      yes
receipt on any bind     yes            yes                 no (prefer the
                                                           submitting TRX)
======================  =============  ==================  ====================

Every profile sends the vendor TLV 0x1401 (the Korean result code, int2) in
each receipt (korea-messaging.md §7, "Convention (SMPP link)").

Loading: :func:`load_profile` returns a built-in profile, or one read from a
TOML file (``[carrier.NAME]`` tables) with keyword overrides on top. Unknown
keys are rejected with an error naming the key; a table may leave keys out, in
which case the built-in profile of the same name supplies them.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from protocol.resultcodes import DEFAULT_MIX_BP, RESULT_CODES

__all__ = [
    "BUILTIN_PROFILES",
    "DEFAULT_ACCOUNTS",
    "MESSAGE_ID_FORMATS",
    "RECEIPT_ID_FORMATS",
    "CarrierProfile",
    "ProfileError",
    "load_profile",
    "load_profiles",
]

# submit_sm_resp message_id formats: a decimal counter; the counter as 8 upper-case
# hex digits; a UUID-like lower-case token whose last group is the counter.
MESSAGE_ID_FORMATS: Final = frozenset({"decimal", "hex8", "uuid"})
# The receipt text ``id:`` relative to the submit_sm_resp id: identical; the same
# counter in decimal, zero-padded to Appendix B's 10 digits; the id upper-cased.
RECEIPT_ID_FORMATS: Final = frozenset({"same", "decimal10", "upper"})

# Top-level TOML tables the carrier loader accepts. ``upstream`` is reserved
# for the upstream load client's settings, which this loader does not read.
_TOP_LEVEL_KEYS: Final = frozenset({"carrier", "upstream"})

DEFAULT_ACCOUNTS: Final[Mapping[str, str]] = MappingProxyType(
    # "relayd" is the account the relay's own configuration binds with; "demo"
    # is a second account for manual runs (smpplib, a second relay). SMPP 3.4
    # §4.1: system_id ≤ 15 octets, password ≤ 8 octets.
    {"relayd": "relaypw", "demo": "demo"}
)


class ProfileError(ValueError):
    """A profile (from TOML or keyword overrides) is invalid; the message names
    the file, the table and the key."""


def _frozen_map(m: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(m))


@dataclass(frozen=True, slots=True)
class CarrierProfile:
    """One carrier SMSC's behaviour. Every field is a key of ``[carrier.NAME]``
    in ``conf/simulators.toml``.

    Raises:
        ProfileError: on construction, when a value is out of range.
    """

    name: str
    """Profile name: ``skt``, ``kt``, ``lgu`` (or any name a config file defines)."""

    system_id: str
    """The SMSC's own system_id, sent in every bind_*_resp (SMPP 3.4 §4.1.2, ≤ 15 octets)."""

    port: int
    """Default listen port on 127.0.0.1 (``--listen`` overrides; 0 = ephemeral)."""

    accounts: Mapping[str, str] = field(default_factory=lambda: DEFAULT_ACCOUNTS, hash=False)
    """ESME accounts: system_id → password. Wrong system_id → ESME_RINVSYSID,
    wrong password → ESME_RINVPASWD."""

    message_id_format: str = "decimal"
    """submit_sm_resp message_id: ``decimal`` | ``hex8`` | ``uuid`` (see module doc)."""

    receipt_id_format: str = "same"
    """Receipt text ``id:`` relative to the resp id: ``same`` | ``decimal10`` | ``upper``."""

    receipt_date_digits: int = 10
    """Receipt ``submit date:``/``done date:`` width: 10 (YYMMDDhhmm), 12 (+ss) or
    14 (YYYYMMDDhhmmss). Times are KST (UTC+9), the SMSC's local time."""

    receipt_state_tlvs: bool = True
    """Send receipted_message_id (0x001E), message_state (0x0427) and, on failure,
    network_error_code (0x0423) with each receipt. The vendor TLV 0x1401 is
    always sent (to binds with interface_version ≥ 0x34)."""

    window: int = 256
    """Max requests per bind received but not yet answered (count). Beyond it a
    submit gets ESME_RMSGQFUL. Only reachable with the response-delay fault:
    otherwise every request is answered in the same loop turn."""

    receipt_window: int = 256
    """Max deliver_sm (receipts) outstanding per receiving bind: the simulator's
    own SMPP window as the requester of deliver_sm (count)."""

    tps_per_bind: float = 2000.0
    """Submits per second per bind (token bucket, burst = 1 s worth); beyond it
    ESME_RTHROTTLED. 0 = unlimited. Counted per PDU (a submit_multi is one)."""

    max_binds: int = 8
    """Max simultaneous binds per system_id (any bind type); beyond it the bind
    is refused with ESME_RBINDFAIL. 0 = unlimited."""

    receipts_on_any_bind: bool = True
    """True: a receipt goes to any receiver/transceiver bind of the submitting
    system_id (round-robin). False: to the submitting connection if it is a
    transceiver and still bound, else to any RX/TRX bind of the system_id."""

    receipt_median_s: float = 3.0
    """Median receipt delay (seconds); log-normal, korea-messaging.md §6. 0 = at once."""

    receipt_p99_s: float = 60.0
    """99th percentile of the receipt delay (seconds), ≥ the median."""

    receipt_uniform_max_s: float = 0.0
    """When > 0, the receipt delay is uniform on [0, this] seconds instead of
    log-normal (``receipt_median_s``/``receipt_p99_s`` are then unused): a
    bounded spread, so a benchmark measures the relay rather than a long tail
    of the delay distribution. 0 = off (log-normal)."""

    receipt_retry_s: float = 1.0
    """Seconds before re-sending a receipt the ESME answered with an error status."""

    receipt_max_attempts: int = 10
    """Times a receipt is sent to ESMEs that answer it with an error before it is
    dropped (count; timeouts and disconnects requeue without counting)."""

    receipt_queue_max: int = 1_000_000
    """Receipts held per system_id while no RX/TRX bind can take them (count);
    beyond it new receipts are dropped and counted."""

    message_store_size: int = 200_000
    """Recent messages kept for query_sm/cancel_sm/replace_sm (count)."""

    dedup_max_keys: int = 5_000_000
    """Unique-message keys kept for the duplicate count (64-bit ints, ~60 bytes
    each with set overhead: ~60 MB per million); beyond it new keys are not
    tracked (counted as ``dedup_untracked``)."""

    response_timeout_s: float = 10.0
    """Seconds to wait for a deliver_sm_resp before requeueing the receipt."""

    enquire_link_interval_s: float = 30.0
    """Keepalive enquire_link after this much silence (seconds); 0 = never."""

    inactivity_timeout_s: float = 0.0
    """Close a connection after this much silence (seconds); 0 = never."""

    session_init_timeout_s: float = 30.0
    """Close a connection not bound within this time (seconds); 0 = never."""

    code_prefix: str = "0100000"
    """Reserved destinations ``<code_prefix>CCCC`` (11 digits) get result code CCCC."""

    silent_prefix: str = "0100001"
    """Reserved destinations ``<silent_prefix>xxxx`` are accepted and never receipted."""

    result_mix_bp: Mapping[int, int] = field(
        default_factory=lambda: _frozen_map(DEFAULT_MIX_BP), hash=False
    )
    """Result codes for ordinary destinations, in basis points summing to 10,000
    (korea-messaging.md §7 simulator mix). Receipt-time codes only."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "accounts", _frozen_map(self.accounts))
        object.__setattr__(self, "result_mix_bp", _frozen_map(self.result_mix_bp))
        _validate(self)

    def lognormal_params(self) -> tuple[float, float]:
        """(mu, sigma) of the receipt delay: mu = ln(median),
        sigma = (ln(p99) − ln(median)) / 2.326 (z of the 99th percentile).
        Meaningless when the median is 0 (delay 0)."""
        if self.receipt_median_s <= 0:
            return (-math.inf, 0.0)
        mu = math.log(self.receipt_median_s)
        return mu, (math.log(self.receipt_p99_s) - mu) / 2.326

    def replace(self, **overrides: Any) -> CarrierProfile:
        """A copy with some fields changed (validated, unknown names refused)."""
        _check_names(overrides, f"profile {self.name!r} overrides")
        return dataclasses.replace(self, **overrides)


_FIELDS: Final = {f.name: f for f in dataclasses.fields(CarrierProfile)}


def _check_names(d: Mapping[str, Any], where: str) -> None:
    for key in d:
        if key not in _FIELDS:
            raise ProfileError(
                f"{where}: unknown key {key!r} (known keys: {', '.join(sorted(_FIELDS))})"
            )


def _validate(p: CarrierProfile) -> None:
    where = f"profile {p.name!r}"

    def bad(key: str, why: str) -> ProfileError:
        return ProfileError(f"{where}: {key} {why}, got {getattr(p, key)!r}")

    # Types first: TOML gives us int/float/bool/str; a wrong type is a clear error.
    for name, f in _FIELDS.items():
        value = getattr(p, name)
        t = f.type
        ok: bool
        if t == "str":
            ok = isinstance(value, str)
        elif t == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif t == "float":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif t == "bool":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, Mapping)
        if not ok:
            raise ProfileError(f"{where}: {name} must be {t}, got {value!r}")
    if not p.name:
        raise bad("name", "must not be empty")
    sid = p.system_id.encode("latin-1", "replace")
    if not sid or len(sid) > 15:
        raise bad("system_id", "must be 1..15 octets")
    if not 0 <= p.port <= 65535:
        raise bad("port", "must be in 0..65535")
    if not p.accounts:
        raise bad("accounts", "must name at least one account")
    # The values come from TOML: check their types at run time.
    accounts: Mapping[Any, object] = p.accounts
    for sys_id, password in accounts.items():
        if (
            not isinstance(sys_id, str)
            or not isinstance(password, str)
            or not 1 <= len(sys_id) <= 15
            or len(password) > 8
        ):
            raise ProfileError(
                f"{where}: accounts: {sys_id!r} = {password!r}: system_id must be 1..15 "
                "characters and the password a string of at most 8 (SMPP 3.4 §4.1)"
            )
    if p.message_id_format not in MESSAGE_ID_FORMATS:
        raise bad("message_id_format", f"must be one of {sorted(MESSAGE_ID_FORMATS)}")
    if p.receipt_id_format not in RECEIPT_ID_FORMATS:
        raise bad("receipt_id_format", f"must be one of {sorted(RECEIPT_ID_FORMATS)}")
    if p.receipt_date_digits not in (10, 12, 14):
        raise bad("receipt_date_digits", "must be 10, 12 or 14")
    for key in ("window", "receipt_window", "receipt_max_attempts", "message_store_size"):
        if getattr(p, key) < 1:
            raise bad(key, "must be >= 1")
    for key in ("max_binds", "receipt_queue_max", "dedup_max_keys"):
        if getattr(p, key) < 0:
            raise bad(key, "must be >= 0")
    for key in (
        "tps_per_bind",
        "receipt_median_s",
        "receipt_uniform_max_s",
        "receipt_retry_s",
        "enquire_link_interval_s",
        "inactivity_timeout_s",
        "session_init_timeout_s",
    ):
        if not getattr(p, key) >= 0:
            raise bad(key, "must be >= 0")
    if not p.response_timeout_s > 0:
        raise bad("response_timeout_s", "must be > 0")
    if not p.receipt_p99_s >= p.receipt_median_s:
        raise bad("receipt_p99_s", f"must be >= receipt_median_s ({p.receipt_median_s})")
    if p.receipt_median_s > 0 and not p.receipt_p99_s > 0:
        raise bad("receipt_p99_s", "must be > 0")
    for key in ("code_prefix", "silent_prefix"):
        value = getattr(p, key)
        if not (value.isascii() and value.isdigit() and 1 <= len(value) <= 16):
            raise bad(key, "must be 1..16 ASCII digits")
    if p.code_prefix.startswith(p.silent_prefix) or p.silent_prefix.startswith(p.code_prefix):
        raise ProfileError(f"{where}: code_prefix and silent_prefix must not overlap")
    total = 0
    mix: Mapping[Any, object] = p.result_mix_bp
    for code, bp in mix.items():
        row = RESULT_CODES.get(code) if isinstance(code, int) else None
        if row is None or row.stat is None:
            raise ProfileError(
                f"{where}: result_mix_bp: {code!r} is not a receipt-time result code "
                "(korea-messaging.md §7)"
            )
        if not isinstance(bp, int) or isinstance(bp, bool) or bp < 0:
            raise ProfileError(f"{where}: result_mix_bp: {code} = {bp!r} must be an int >= 0")
        total += bp
    if total != 10_000:
        raise ProfileError(f"{where}: result_mix_bp must sum to 10000 basis points, got {total}")


# ----------------------------------------------------------------------------- built-ins

BUILTIN_PROFILES: Final[Mapping[str, CarrierProfile]] = MappingProxyType(
    {
        "skt": CarrierProfile(
            name="skt",
            system_id="SKTSMSC",
            port=2776,
            message_id_format="decimal",
            receipt_id_format="same",
            receipt_date_digits=10,
            receipt_state_tlvs=True,
            window=256,
            receipt_window=256,
            tps_per_bind=2000.0,
            max_binds=8,
            receipts_on_any_bind=True,
        ),
        "kt": CarrierProfile(
            name="kt",
            system_id="KTSMSC",
            port=2777,
            message_id_format="hex8",
            receipt_id_format="decimal10",
            receipt_date_digits=12,
            receipt_state_tlvs=False,
            window=128,
            receipt_window=128,
            tps_per_bind=1000.0,
            max_binds=4,
            receipts_on_any_bind=True,
        ),
        "lgu": CarrierProfile(
            name="lgu",
            system_id="LGUSMSC",
            port=2778,
            message_id_format="uuid",
            receipt_id_format="upper",
            receipt_date_digits=14,
            receipt_state_tlvs=True,
            window=64,
            receipt_window=64,
            tps_per_bind=1500.0,
            max_binds=6,
            receipts_on_any_bind=False,
        ),
    }
)


# ----------------------------------------------------------------------------- loading


def _from_table(name: str, table: Mapping[str, Any], where: str) -> CarrierProfile:
    _check_names(table, where)
    if "name" in table and table["name"] != name:
        raise ProfileError(f"{where}: name {table['name']!r} differs from the table name")
    values: dict[str, Any] = dict(table)
    values["name"] = name
    if "result_mix_bp" in values:
        mix = values["result_mix_bp"]
        if not isinstance(mix, Mapping):
            raise ProfileError(f"{where}: result_mix_bp must be a table")
        converted: dict[int, Any] = {}
        for code, bp in mix.items():
            if not (isinstance(code, str) and code.isascii() and code.isdigit()):
                raise ProfileError(f"{where}: result_mix_bp: key {code!r} is not a result code")
            converted[int(code)] = bp
        values["result_mix_bp"] = converted
    base = BUILTIN_PROFILES.get(name)
    try:
        if base is not None:
            return dataclasses.replace(base, **values)
        required = [
            k
            for k, f in _FIELDS.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = sorted(k for k in required if k not in values)
        if missing:
            raise ProfileError(f"{where}: new profile needs {', '.join(missing)}")
        return CarrierProfile(**values)
    except ProfileError as exc:
        raise ProfileError(f"{where}: {exc}") from None


def load_profiles(config_path: str) -> dict[str, CarrierProfile]:
    """Every ``[carrier.NAME]`` profile in a TOML file.

    Raises:
        ProfileError: unknown keys (top level or in a profile), wrong types or
            values out of range; the message names the file, table and key.
        OSError: the file cannot be read.
    """
    with open(config_path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{config_path}: invalid TOML: {exc}") from None
    for key in doc:
        if key not in _TOP_LEVEL_KEYS:
            raise ProfileError(
                f"{config_path}: unknown top-level key {key!r} "
                f"(known: {', '.join(sorted(_TOP_LEVEL_KEYS))})"
            )
    carriers = doc.get("carrier", {})
    if not isinstance(carriers, Mapping):
        raise ProfileError(f"{config_path}: carrier must be a table of [carrier.NAME] tables")
    out: dict[str, CarrierProfile] = {}
    for name, table in carriers.items():
        where = f"{config_path}: [carrier.{name}]"
        if not isinstance(table, Mapping):
            raise ProfileError(f"{where}: must be a table")
        out[name] = _from_table(name, table, where)
    return out


def load_profile(name: str, config_path: str | None = None, **overrides: Any) -> CarrierProfile:
    """One carrier profile: built in, or from ``config_path``, then ``overrides``.

    Args:
        name: ``skt``, ``kt``, ``lgu`` or a name the config file defines.
        config_path: a TOML file with ``[carrier.NAME]`` tables; None = built-ins.
        overrides: profile fields to replace (e.g. ``receipt_median_s=0.01``).

    Raises:
        ProfileError: unknown profile name, unknown key, or an invalid value.
    """
    if config_path is None:
        profiles: Mapping[str, CarrierProfile] = BUILTIN_PROFILES
        source = "built-in profiles"
    else:
        profiles = load_profiles(config_path)
        source = config_path
    profile = profiles.get(name)
    if profile is None:
        raise ProfileError(
            f"{source}: no carrier profile {name!r} (known: {', '.join(sorted(profiles))})"
        )
    if overrides:
        profile = profile.replace(**overrides)
    return profile
