//! The challenge-protected exchange state machine.

use leasegate_nuki::{
    cmd, Command, ErrorCode, ErrorReport, Exchange, ExchangeError, KeypadCode, KeypadCodeEntry,
    KeyturnerStates, NukiDate, Op, Outcome, PinWidth, Progress, Reply, SecurityPin, Status,
    TimeLimits,
};

fn pin() -> SecurityPin {
    SecurityPin::new(4321, PinWidth::U16).unwrap()
}

fn add() -> Op {
    Op::AddCode {
        code: KeypadCode::new(345678).unwrap(),
        name: "Unit 4".into(),
        limits: TimeLimits::default(),
    }
}

#[test]
fn an_add_asks_for_a_challenge_then_sends_the_code_with_that_nonce() {
    let (mut x, first) = Exchange::start(add(), pin());
    assert_eq!(first, Command::RequestData(cmd::CHALLENGE));
    match x.on_reply(Reply::Challenge([9; 32])).unwrap() {
        Progress::Send(Command::AddKeypadCode { nonce, code, .. }) => {
            assert_eq!(nonce, [9; 32]);
            assert_eq!(code.expose(), 345678);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        x.on_reply(Reply::Status(Status::Accepted)).unwrap(),
        Progress::Wait
    );
    assert_eq!(
        x.on_reply(Reply::KeypadCodeId(17)).unwrap(),
        Progress::Done(Outcome::CodeAdded { id: 17 })
    );
    assert_eq!(
        x.on_reply(Reply::KeypadCodeId(17)),
        Err(ExchangeError::Finished)
    );
}

#[test]
fn a_busy_lock_is_a_retryable_error_and_a_bad_pin_is_fatal() {
    for (code, retry, fatal) in [
        (ErrorCode::Busy, true, false),
        (ErrorCode::BadPin, false, true),
        (ErrorCode::TooManyEntries, false, false),
        (ErrorCode::CodeAlreadyExists, false, false),
    ] {
        let (mut x, _) = Exchange::start(add(), pin());
        x.on_reply(Reply::Challenge([1; 32])).unwrap();
        let e = x
            .on_reply(Reply::Error(ErrorReport {
                code,
                command: cmd::ADD_KEYPAD_CODE,
            }))
            .unwrap_err();
        assert_eq!((e.is_retryable(), e.is_fatal()), (retry, fatal), "{code}");
    }
}

#[test]
fn a_late_status_from_the_previous_command_is_ignored_while_waiting_for_a_challenge() {
    let (mut x, _) = Exchange::start(Op::RemoveCode { id: 3 }, pin());
    assert_eq!(
        x.on_reply(Reply::Status(Status::Complete)).unwrap(),
        Progress::Wait
    );
    assert!(matches!(
        x.on_reply(Reply::Challenge([2; 32])).unwrap(),
        Progress::Send(Command::RemoveKeypadCode { id: 3, .. })
    ));
    assert_eq!(
        x.on_reply(Reply::Status(Status::Complete)).unwrap(),
        Progress::Done(Outcome::Completed)
    );
}

fn entry(id: u16) -> KeypadCodeEntry {
    KeypadCodeEntry {
        id,
        code: KeypadCode::new(345678).unwrap(),
        name: format!("c{id}"),
        enabled: true,
        created: NukiDate::new(2026, 1, 1, 0, 0, 0).unwrap(),
        last_active: NukiDate::default(),
        lock_count: 0,
        limits: TimeLimits::default(),
    }
}

#[test]
fn a_list_ends_when_the_announced_count_of_entries_arrived() {
    let (mut x, _) = Exchange::start(
        Op::ListCodes {
            offset: 0,
            count: 100,
        },
        pin(),
    );
    x.on_reply(Reply::Challenge([2; 32])).unwrap();
    assert_eq!(
        x.on_reply(Reply::KeypadCodeCount(2)).unwrap(),
        Progress::Wait
    );
    assert_eq!(
        x.on_reply(Reply::KeypadCode(entry(1))).unwrap(),
        Progress::Wait
    );
    assert_eq!(
        x.on_reply(Reply::KeypadCode(entry(2))).unwrap(),
        Progress::Done(Outcome::Codes(vec![entry(1), entry(2)]))
    );
}

#[test]
fn an_empty_list_ends_at_a_zero_count() {
    let (mut x, _) = Exchange::start(
        Op::ListCodes {
            offset: 0,
            count: 100,
        },
        pin(),
    );
    x.on_reply(Reply::Challenge([2; 32])).unwrap();
    assert_eq!(
        x.on_reply(Reply::KeypadCodeCount(0)).unwrap(),
        Progress::Done(Outcome::Codes(vec![]))
    );
}

#[test]
fn keyturner_states_need_no_challenge() {
    let (_, first) = Exchange::start(Op::States, pin());
    assert_eq!(first, Command::RequestData(cmd::KEYTURNER_STATES));
}

#[test]
fn keyturner_states_after_a_list_skip_the_lists_late_status_complete() {
    let (mut x, _) = Exchange::start(Op::States, pin());
    assert_eq!(
        x.on_reply(Reply::Status(Status::Complete)).unwrap(),
        Progress::Wait
    );
    let st = KeyturnerStates {
        nuki_state: 2,
        lock_state: 1,
        trigger: 0,
        time: Default::default(),
        timezone_offset_minutes: 0,
        battery_byte: 42 << 2,
    };
    assert_eq!(
        x.on_reply(Reply::KeyturnerStates(st)).unwrap(),
        Progress::Done(Outcome::States(st))
    );
}

#[test]
fn a_reply_for_another_command_is_a_retryable_protocol_error() {
    let (mut x, _) = Exchange::start(add(), pin());
    x.on_reply(Reply::Challenge([2; 32])).unwrap();
    let e = x.on_reply(Reply::KeypadCodeCount(1)).unwrap_err();
    assert_eq!(e, ExchangeError::Unexpected(cmd::KEYPAD_CODE_COUNT));
    assert!(e.is_retryable());
}

#[test]
fn secrets_never_show_in_debug_output() {
    let (x, _) = Exchange::start(add(), pin());
    let s = format!("{x:?}");
    assert!(!s.contains("345678") && !s.contains("4321"), "{s}");
    let k = leasegate_nuki::SharedKey::from_bytes([0xab; 32]);
    assert!(!format!("{k:?}").contains("ab"));
}
