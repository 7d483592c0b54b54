"""The Korean carrier result codes (korea-messaging.md §7) as one table.

The carrier simulators emit these codes; the relay passes them through unchanged
in its reports, maps them to a receipt ``stat``/``message_state`` and decides by
their class whether to retry. Codes are the Infobank gateway / NHN Cloud carrier
result codes ("이통사" rows).

Classes:
  OK  success
  T   transient subscriber/network state — the network already retried within
      its deadline; final for the relay (fallback allowed)
  P   permanent for this number/content
  S   system — the relay may resubmit
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocol.constants import CommandStatus, MessageState


class ResultClass(Enum):
    OK = "ok"
    TRANSIENT = "T"
    PERMANENT = "P"
    SYSTEM = "S"


@dataclass(frozen=True, slots=True)
class ResultCode:
    """One row of korea-messaging.md §7.

    Attributes:
        code: the 4-digit code.
        text: the Korean description, reported to clients as ``codeText``.
        result_class: OK / T / P / S.
        stat: the Appendix B receipt ``stat`` (None for submit-time codes).
        message_state: the SMPP message_state for ``stat`` (None likewise).
        submit_status: for codes signalled in a submit response instead of a
            receipt, the SMPP command_status that carries them.
    """

    code: int
    text: str
    result_class: ResultClass
    stat: str | None
    message_state: int | None
    submit_status: int | None = None

    @property
    def is_success(self) -> bool:
        return self.result_class is ResultClass.OK


_OK, _T, _P, _S = (
    ResultClass.OK,
    ResultClass.TRANSIENT,
    ResultClass.PERMANENT,
    ResultClass.SYSTEM,
)
_D, _EX, _DEL, _UN, _UNK, _REJ = (
    MessageState.DELIVERED,
    MessageState.EXPIRED,
    MessageState.DELETED,
    MessageState.UNDELIVERABLE,
    MessageState.UNKNOWN,
    MessageState.REJECTED,
)

_ROWS = (
    ResultCode(1000, "성공", _OK, "DELIVRD", _D),
    ResultCode(1001, "Server Busy (queue full)", _S, None, None, CommandStatus.ESME_RMSGQFUL),
    ResultCode(1002, "수신 번호 형식 오류", _P, None, None, CommandStatus.ESME_RINVDSTADR),
    ResultCode(1003, "회신(발신) 번호 형식 오류", _P, None, None, CommandStatus.ESME_RINVSRCADR),
    ResultCode(1019, "TTL 초과", _T, "EXPIRED", _EX),
    ResultCode(2000, "전송 시간 초과", _T, "EXPIRED", _EX),
    ResultCode(2001, "전송 실패(무선망단)", _T, "UNDELIV", _UN),
    ResultCode(2002, "전송 실패(무선망→단말기단)", _T, "UNDELIV", _UN),
    ResultCode(2003, "단말기 전원 꺼짐", _T, "UNDELIV", _UN),
    ResultCode(2004, "단말기 메시지 버퍼 풀", _T, "UNDELIV", _UN),
    ResultCode(2005, "음영 지역", _T, "UNDELIV", _UN),
    ResultCode(2006, "메시지 삭제됨", _P, "DELETED", _DEL),
    ResultCode(2007, "일시적인 단말 문제", _T, "UNDELIV", _UN),
    ResultCode(3000, "전송할 수 없음", _P, "UNDELIV", _UN),
    ResultCode(3001, "가입자 없음", _P, "UNDELIV", _UN),
    ResultCode(3002, "성인 인증 실패", _P, "REJECTD", _REJ),
    ResultCode(3003, "수신 번호 형식 오류 또는 결번", _P, "UNDELIV", _UN),
    ResultCode(3004, "단말기 서비스 일시 정지", _P, "UNDELIV", _UN),
    ResultCode(3005, "단말기 호 처리 상태", _T, "UNDELIV", _UN),
    ResultCode(3006, "착신 거절", _P, "REJECTD", _REJ),
    ResultCode(3007, "콜백 URL을 받을 수 없는 단말기", _P, "UNDELIV", _UN),
    ResultCode(3008, "기타 단말기 문제", _P, "UNDELIV", _UN),
    ResultCode(3009, "메시지 형식 오류", _P, "REJECTD", _REJ),
    ResultCode(3010, "MMS 미지원 단말", _P, "UNDELIV", _UN),
    ResultCode(3011, "서버 오류", _S, "UNKNOWN", _UNK),
    ResultCode(3012, "스팸", _P, "REJECTD", _REJ),
    ResultCode(3013, "서비스 거부", _P, "REJECTD", _REJ),
    ResultCode(3014, "기타", _P, "UNDELIV", _UN),
    ResultCode(3015, "전송 경로 없음", _S, "UNDELIV", _UN),
    ResultCode(3016, "첨부 파일 크기 제한 실패", _P, "REJECTD", _REJ),
    ResultCode(3017, "발신 번호 변작 방지 세칙 위반", _P, "REJECTD", _REJ),
    ResultCode(3018, "번호도용 문자차단 가입 발신 번호", _P, "REJECTD", _REJ),
    ResultCode(3019, "KISA·정부 차단 발신 번호", _P, "REJECTD", _REJ),
)

RESULT_CODES: dict[int, ResultCode] = {row.code: row for row in _ROWS}

SUCCESS = 1000

# korea-messaging.md §7, "Convention (simulator mix, per 10,000 recipients)":
# 1000 ≈ 96 %; 2003 ≈ 1.5 %; 2005 ≈ 0.5 %; 3003 ≈ 1 %; 3001 ≈ 0.3 %;
# 3005/2004/3006/3012 ≈ 0.1 % each. In basis points; sums to 10,000.
DEFAULT_MIX_BP: dict[int, int] = {
    1000: 9_600,
    2003: 150,
    2005: 50,
    3003: 100,
    3001: 30,
    3005: 10,
    2004: 10,
    3006: 10,
    3012: 10,
    3014: 30,  # the remainder, so the mix sums to 100 %
}
assert sum(DEFAULT_MIX_BP.values()) == 10_000


def lookup(code: int) -> ResultCode | None:
    """The row for ``code``, or None for a code outside the table."""
    return RESULT_CODES.get(code)
