"""Numeric constants of SMPP v3.4, named as the specification names them.

Every table here was checked value by value against SMPP 3.4 (Issue 1.2) — see
../shared/docs/smpp34-digest.md. Values received from a peer are kept as plain
``int`` wherever the set is open (command_status, TLV tags, data_coding): an
unknown value is data, never an exception (digest §4, §7, §13).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

# SMPP 3.4 §5.1.2: a response's command_id is its request's with bit 31 set.
RESPONSE_BIT = 0x80000000

# SMPP 3.4 §5.1.4: sequence_number ranges 0x00000001..0x7FFFFFFF.
MAX_SEQUENCE_NUMBER = 0x7FFFFFFF

HEADER_BYTES = 16

# SMPP 3.4 §5.2.4: 0x34 is v3.4; 0x00..0x33 means v3.3 or earlier.
INTERFACE_VERSION_34 = 0x34


class CommandId(IntEnum):
    """SMPP 3.4 §5.1.2.1, Table 5-1: the 27 command ids."""

    generic_nack = 0x80000000
    bind_receiver = 0x00000001
    bind_receiver_resp = 0x80000001
    bind_transmitter = 0x00000002
    bind_transmitter_resp = 0x80000002
    query_sm = 0x00000003
    query_sm_resp = 0x80000003
    submit_sm = 0x00000004
    submit_sm_resp = 0x80000004
    deliver_sm = 0x00000005
    deliver_sm_resp = 0x80000005
    unbind = 0x00000006
    unbind_resp = 0x80000006
    replace_sm = 0x00000007
    replace_sm_resp = 0x80000007
    cancel_sm = 0x00000008
    cancel_sm_resp = 0x80000008
    bind_transceiver = 0x00000009
    bind_transceiver_resp = 0x80000009
    outbind = 0x0000000B
    enquire_link = 0x00000015
    enquire_link_resp = 0x80000015
    submit_multi = 0x00000021
    submit_multi_resp = 0x80000021
    alert_notification = 0x00000102
    data_sm = 0x00000103
    data_sm_resp = 0x80000103


class CommandStatus(IntEnum):
    """SMPP 3.4 §5.1.3, Table 5-2 (48 codes), plus the [v5.0] codes real SMSCs send
    to v3.4 binds. Vendor codes 0x400..0x4FF and any other value stay plain ints."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF
    # [v5.0] §5.1.3 additions, seen on v3.4 binds of newer SMSCs.
    ESME_RSERTYPUNAUTH = 0x00000100
    ESME_RPROHIBITED = 0x00000101
    ESME_RSERTYPUNAVAIL = 0x00000102
    ESME_RSERTYPDENIED = 0x00000103
    ESME_RINVDCS = 0x00000104
    ESME_RINVSRCADDRSUBUNIT = 0x00000105
    ESME_RINVDSTADDRSUBUNIT = 0x00000106
    ESME_RINVBCASTFREQINT = 0x00000107
    ESME_RINVBCASTALIAS_NAME = 0x00000108
    ESME_RINVBCASTAREAFMT = 0x00000109
    ESME_RINVNUMBCAST_AREAS = 0x0000010A
    ESME_RINVBCASTCNTTYPE = 0x0000010B
    ESME_RINVBCASTMSGCLASS = 0x0000010C
    ESME_RBCASTFAIL = 0x0000010D
    ESME_RBCASTQUERYFAIL = 0x0000010E
    ESME_RBCASTCANCELFAIL = 0x0000010F
    ESME_RINVBCAST_REP = 0x00000110
    ESME_RINVBCASTSRVGRP = 0x00000111
    ESME_RINVBCASTCHANIND = 0x00000112

    # [v5.0] renames of 0xC0..0xC4 — same values; accepted as aliases.
    ESME_RINVTLVSTREAM = 0x000000C0
    ESME_RTLVNOTALLWD = 0x000000C1
    ESME_RINVTLVLEN = 0x000000C2
    ESME_RMISSINGTLV = 0x000000C3
    ESME_RINVTLVVAL = 0x000000C4


# The number of named codes in v3.4's Table 5-2 (asserted by a test).
V34_STATUS_COUNT = 48


def status_name(status: int) -> str:
    """The spec name of a command_status, or a stable description of an unknown one.

    Unknown values are never an error (digest §4): vendor codes 0x400..0x4FF read
    ``vendor:0x00000401``, anything else ``reserved:0x...``.
    """
    try:
        return CommandStatus(status).name
    except ValueError:
        if 0x400 <= status <= 0x4FF:
            return f"vendor:0x{status:08X}"
        return f"reserved:0x{status:08X}"


class Tag(IntEnum):
    """SMPP 3.4 §5.3.2 TLV tags (the digest's §7 table)."""

    dest_addr_subunit = 0x0005
    dest_network_type = 0x0006
    dest_bearer_type = 0x0007
    dest_telematics_id = 0x0008
    source_addr_subunit = 0x000D
    source_network_type = 0x000E
    source_bearer_type = 0x000F
    source_telematics_id = 0x0010
    qos_time_to_live = 0x0017
    payload_type = 0x0019
    additional_status_info_text = 0x001D
    receipted_message_id = 0x001E
    ms_msg_wait_facilities = 0x0030
    privacy_indicator = 0x0201
    source_subaddress = 0x0202
    dest_subaddress = 0x0203
    user_message_reference = 0x0204
    user_response_code = 0x0205
    source_port = 0x020A
    destination_port = 0x020B
    sar_msg_ref_num = 0x020C
    language_indicator = 0x020D
    sar_total_segments = 0x020E
    sar_segment_seqnum = 0x020F
    sc_interface_version = 0x0210
    callback_num_pres_ind = 0x0302
    callback_num_atag = 0x0303
    number_of_messages = 0x0304
    callback_num = 0x0381
    dpf_result = 0x0420
    set_dpf = 0x0421
    ms_availability_status = 0x0422
    network_error_code = 0x0423
    message_payload = 0x0424
    delivery_failure_reason = 0x0425
    more_messages_to_send = 0x0426
    message_state = 0x0427
    ussd_service_op = 0x0501
    display_time = 0x1201
    sms_signal = 0x1203
    ms_validity = 0x1204
    alert_on_message_delivery = 0x130C
    its_reply_type = 0x1380
    its_session_info = 0x1383


class TlvType(IntEnum):
    """How a known TLV's value is typed (digest §7)."""

    INT1 = 1
    INT2 = 2
    INT4 = 4
    CSTRING = 5  # C-Octet String: value is str, encoded with its trailing NUL
    OCTETS = 6  # Octet String: value is bytes
    EMPTY = 7  # no value (length 0): value is None


# SMPP 3.4 §5.3.2: the type of every standard TLV. Used by the hand-written codec
# and by text/receipt helpers; the construct spec (protocol/spec.py) declares its
# own table so the equivalence tests check one against the other.
TLV_TYPES: dict[int, TlvType] = {
    Tag.dest_addr_subunit: TlvType.INT1,
    Tag.dest_network_type: TlvType.INT1,
    Tag.dest_bearer_type: TlvType.INT1,
    Tag.dest_telematics_id: TlvType.INT2,
    Tag.source_addr_subunit: TlvType.INT1,
    Tag.source_network_type: TlvType.INT1,
    Tag.source_bearer_type: TlvType.INT1,
    Tag.source_telematics_id: TlvType.INT1,  # §5.3.2.8: 1 octet, unlike dest's 2
    Tag.qos_time_to_live: TlvType.INT4,
    Tag.payload_type: TlvType.INT1,
    Tag.additional_status_info_text: TlvType.CSTRING,
    Tag.receipted_message_id: TlvType.CSTRING,
    Tag.ms_msg_wait_facilities: TlvType.INT1,
    Tag.privacy_indicator: TlvType.INT1,
    Tag.source_subaddress: TlvType.OCTETS,
    Tag.dest_subaddress: TlvType.OCTETS,
    Tag.user_message_reference: TlvType.INT2,
    Tag.user_response_code: TlvType.INT1,
    Tag.source_port: TlvType.INT2,
    Tag.destination_port: TlvType.INT2,
    Tag.sar_msg_ref_num: TlvType.INT2,
    Tag.language_indicator: TlvType.INT1,
    Tag.sar_total_segments: TlvType.INT1,
    Tag.sar_segment_seqnum: TlvType.INT1,
    Tag.sc_interface_version: TlvType.INT1,
    Tag.callback_num_pres_ind: TlvType.INT1,
    Tag.callback_num_atag: TlvType.OCTETS,
    Tag.number_of_messages: TlvType.INT1,
    Tag.callback_num: TlvType.OCTETS,
    Tag.dpf_result: TlvType.INT1,
    Tag.set_dpf: TlvType.INT1,
    Tag.ms_availability_status: TlvType.INT1,
    Tag.network_error_code: TlvType.OCTETS,
    Tag.message_payload: TlvType.OCTETS,
    Tag.delivery_failure_reason: TlvType.INT1,
    Tag.more_messages_to_send: TlvType.INT1,
    Tag.message_state: TlvType.INT1,
    Tag.ussd_service_op: TlvType.INT1,
    Tag.display_time: TlvType.INT1,
    Tag.sms_signal: TlvType.INT2,
    Tag.ms_validity: TlvType.INT1,
    Tag.alert_on_message_delivery: TlvType.EMPTY,
    Tag.its_reply_type: TlvType.INT1,
    Tag.its_session_info: TlvType.OCTETS,
}

# SMPP 3.4 §5.3.2.12 / §5.3.2.11: maximum sizes of the C-string TLVs, NUL included.
TLV_CSTRING_MAX: dict[int, int] = {
    Tag.receipted_message_id: 65,
    Tag.additional_status_info_text: 256,
}

# Vendor-specific TLV carrying the Korean 4-digit carrier result code (korea-messaging.md
# §7, "Convention (SMPP link)"): an int2 in the SMSC vendor range 0x1400..0x3FFF.
# Unknown to other peers, who skip it (SMPP 3.4 §3.3). Kept as raw bytes by the codec.
TAG_KR_RESULT_CODE = 0x1401


class Ton(IntEnum):
    """SMPP 3.4 §5.2.5 type of number."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER_NUMBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(IntEnum):
    """SMPP 3.4 §5.2.6 numbering plan indicator. 2 is not defined (digest §13)."""

    UNKNOWN = 0
    ISDN = 1  # E.163/E.164
    DATA = 3  # X.121
    TELEX = 4  # F.69
    LAND_MOBILE = 6  # E.212
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    INTERNET = 14
    WAP_CLIENT_ID = 18


class DataCoding(IntEnum):
    """SMPP 3.4 §5.2.19 data_coding values this project names. Others stay ints."""

    SMSC_DEFAULT = 0x00
    IA5 = 0x01
    OCTET_UNSPECIFIED_CDMA = 0x02
    LATIN1 = 0x03
    OCTET_UNSPECIFIED = 0x04
    JIS = 0x05
    CYRILLIC = 0x06
    LATIN_HEBREW = 0x07
    UCS2 = 0x08
    PICTOGRAM = 0x09
    ISO_2022_JP = 0x0A
    EXTENDED_KANJI = 0x0D
    KSC5601 = 0x0E


class EsmClass(IntFlag):
    """SMPP 3.4 §5.2.12 esm_class bits."""

    DEFAULT = 0x00
    DATAGRAM_MODE = 0x01
    FORWARD_MODE = 0x02
    STORE_AND_FORWARD_MODE = 0x03
    # message type, bits 5..2 (ESME→SMSC meanings first)
    ESME_DELIVERY_ACK = 0x08
    ESME_MANUAL_ACK = 0x10
    # message type, bits 5..2, SMSC→ESME (deliver_sm, data_sm)
    SMSC_DELIVERY_RECEIPT = 0x04
    SME_DELIVERY_ACK = 0x08
    SME_MANUAL_ACK = 0x10
    CONVERSATION_ABORT = 0x18
    INTERMEDIATE_NOTIFICATION = 0x20
    # GSM features, bits 7..6
    UDHI = 0x40
    REPLY_PATH = 0x80


# Mask of the message-type bits 5..2 of esm_class: test receipt-ness with
# ``esm_class & ESM_CLASS_TYPE_MASK == EsmClass.SMSC_DELIVERY_RECEIPT`` (digest §8).
ESM_CLASS_TYPE_MASK = 0x3C


class RegisteredDelivery(IntFlag):
    """SMPP 3.4 §5.2.17 registered_delivery bits."""

    NONE = 0x00
    RECEIPT_ON_FINAL = 0x01  # success or failure
    RECEIPT_ON_FAILURE = 0x02
    RECEIPT_ON_SUCCESS = 0x03  # reserved in v3.4; [v5.0] success only
    SME_DELIVERY_ACK = 0x04
    SME_MANUAL_ACK = 0x08
    # Bit 4 (mask xxx1xxxx): the v3.4 heading says "bit 5"; the mask wins (digest §13).
    INTERMEDIATE_NOTIFICATION = 0x10


RECEIPT_MASK = 0x03


class MessageState(IntEnum):
    """SMPP 3.4 §5.2.28 message_state, plus [v5.0] SCHEDULED and SKIPPED."""

    SCHEDULED = 0
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8
    SKIPPED = 9


class DestFlag(IntEnum):
    """SMPP 3.4 §5.2.25 dest_flag in submit_multi."""

    SME_ADDRESS = 1
    DISTRIBUTION_LIST = 2
