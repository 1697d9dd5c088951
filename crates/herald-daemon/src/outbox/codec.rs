//! The stored form of records, rows and Provider statuses, shared by every backend: a small
//! binary encoding (a version byte, LEB128 integers, length-prefixed strings), several times
//! smaller and faster than JSON. The id is the key, not part of the value. Events are stored as
//! their JSON.

use herald_core::{Event, OrderingKey};

#[cfg(any(feature = "jetstream", test))]
use super::load::{Counts, Load, ProviderLoad};
use super::{DeadReason, ProviderStatus, Record, State, StoreError};

/// The first byte of every encoded record and status.
const VERSION: u8 = 1;

struct Writer(Vec<u8>);

impl Writer {
    fn uint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    /// `None` is 0, `Some(v)` is `v + 1`.
    fn opt(&mut self, v: Option<u64>) {
        self.uint(v.map_or(0, |v| v.saturating_add(1)));
    }

    fn str(&mut self, s: &str) {
        self.uint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let (&b, rest) = self.bytes.split_first().ok_or("it ends too early")?;
        self.bytes = rest;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("an integer is too long".into())
    }

    fn u32(&mut self) -> Result<u32, String> {
        u32::try_from(self.uint()?).map_err(|_| "a count is out of range".to_owned())
    }

    fn opt(&mut self) -> Result<Option<u64>, String> {
        Ok(self.uint()?.checked_sub(1))
    }

    /// The next `len` bytes.
    fn bytes_of(&mut self, len: u64) -> Result<&'a [u8], String> {
        let len = usize::try_from(len).map_err(|_| "a length is out of range")?;
        if len > self.bytes.len() {
            return Err("it ends too early".into());
        }
        let (s, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(s)
    }

    /// Length-prefixed bytes.
    fn take(&mut self) -> Result<&'a [u8], String> {
        let len = self.uint()?;
        self.bytes_of(len)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.take()?).map_err(|_| "a text is not UTF-8".to_owned())
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>, String> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err("a flag is neither 0 nor 1".into()),
        }
    }

    fn version(&mut self) -> Result<(), String> {
        match self.byte()? {
            VERSION => Ok(()),
            v => Err(format!("unknown encoding version {v}")),
        }
    }
}

fn state_byte(state: State) -> u8 {
    match state {
        State::Pending => 0,
        State::Failed => 1,
        State::Delivered => 2,
        State::Dead => 3,
    }
}

fn reason_byte(reason: Option<DeadReason>) -> u8 {
    match reason {
        None => 0,
        Some(DeadReason::Quota) => 1,
        Some(DeadReason::MaxAge) => 2,
        Some(DeadReason::Permanent) => 3,
    }
}

/// The most bytes [`encode_record`] writes for `r`, so that it makes one allocation: the fixed
/// fields and the length prefixes take at most 141 bytes (every varint at its longest), then
/// the text.
fn record_room(r: &Record) -> usize {
    let strings = [
        &r.provider,
        &r.provider_type,
        &r.alert,
        &r.object,
        &r.reason,
    ];
    let text: usize = strings.iter().map(|s| s.len()).sum();
    141 + text + r.last_error.as_ref().map_or(0, String::len)
}

/// A record's stored form (without its id).
pub(crate) fn encode_record(r: &Record) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(record_room(r)));
    w.0.push(VERSION);
    w.str(&r.provider);
    w.str(&r.provider_type);
    w.str(&r.alert);
    w.str(&r.object);
    w.str(&r.reason);
    w.0.extend_from_slice(&r.key.0.to_le_bytes());
    w.uint(r.accepted_at);
    w.0.push(state_byte(r.state));
    w.0.push(reason_byte(r.dead_reason));
    w.uint(u64::from(r.attempts));
    w.uint(u64::from(r.failures));
    w.uint(r.clock_from);
    w.opt(r.last_attempt_at);
    w.opt(r.next_attempt_at);
    w.opt(r.finished_at);
    w.opt_str(r.last_error.as_deref());
    w.0
}

/// The record `id` from its stored form.
pub(crate) fn decode_record(id: u64, bytes: &[u8]) -> Result<Record, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        id,
        what: "its record",
        message,
    };
    let mut r = Reader { bytes };
    let read = |r: &mut Reader<'_>| -> Result<Record, String> {
        r.version()?;
        let provider = r.str()?.to_owned();
        let provider_type = r.str()?.to_owned();
        let alert = r.str()?.to_owned();
        let object = r.str()?.to_owned();
        let reason = r.str()?.to_owned();
        let mut key = [0u8; 8];
        for b in &mut key {
            *b = r.byte()?;
        }
        let accepted_at = r.uint()?;
        let state = match r.byte()? {
            0 => State::Pending,
            1 => State::Failed,
            2 => State::Delivered,
            3 => State::Dead,
            s => return Err(format!("unknown state {s}")),
        };
        let dead_reason = match r.byte()? {
            0 => None,
            1 => Some(DeadReason::Quota),
            2 => Some(DeadReason::MaxAge),
            3 => Some(DeadReason::Permanent),
            d => return Err(format!("unknown reason {d}")),
        };
        Ok(Record {
            id,
            provider,
            provider_type,
            alert,
            object,
            reason,
            key: OrderingKey(u64::from_le_bytes(key)),
            accepted_at,
            state,
            dead_reason,
            attempts: r.u32()?,
            failures: r.u32()?,
            clock_from: r.uint()?,
            last_attempt_at: r.opt()?,
            next_attempt_at: r.opt()?,
            finished_at: r.opt()?,
            last_error: r.opt_str()?.map(str::to_owned),
        })
    };
    read(&mut r).map_err(corrupt)
}

/// A Provider status's stored form.
pub(crate) fn encode_status(s: &ProviderStatus) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(32));
    w.0.push(VERSION);
    w.opt(s.last_success_at);
    w.opt_str(s.last_error.as_deref());
    w.opt(s.last_error_at);
    w.uint(s.consecutive_failures);
    w.opt(s.failing_since);
    w.0
}

/// A Provider status from its stored form; `None` when unreadable (a status is only a hint).
pub(crate) fn decode_status(bytes: &[u8]) -> Option<ProviderStatus> {
    let mut r = Reader { bytes };
    r.version().ok()?;
    Some(ProviderStatus {
        last_success_at: r.opt().ok()?,
        last_error: r.opt_str().ok()?.map(str::to_owned),
        last_error_at: r.opt().ok()?,
        consecutive_failures: r.uint().ok()?,
        failing_since: r.opt().ok()?,
    })
}

/// The first byte of an encoded [`Load`] (a replica's heartbeat).
#[cfg(any(feature = "jetstream", test))]
const LOAD_VERSION: u8 = 1;

/// A replica's load as its heartbeat carries it: the version, the number of Providers, then
/// per Provider its name, type, pending and in-flight counts.
#[cfg(any(feature = "jetstream", test))]
pub(crate) fn encode_load(load: &Load) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(8 + 48 * load.providers.len()));
    w.0.push(LOAD_VERSION);
    w.uint(load.providers.len() as u64);
    for (provider, p) in &load.providers {
        w.str(provider);
        w.str(&p.provider_type);
        w.uint(p.counts.pending);
        w.uint(p.counts.in_flight);
    }
    w.0
}

/// A replica's load from its heartbeat; `None` when unreadable (another version's heartbeat,
/// which then counts for nothing).
#[cfg(any(feature = "jetstream", test))]
pub(crate) fn decode_load(bytes: &[u8]) -> Option<Load> {
    let mut r = Reader { bytes };
    if r.byte().ok()? != LOAD_VERSION {
        return None;
    }
    let mut load = Load::default();
    for _ in 0..r.uint().ok()? {
        let provider = r.str().ok()?.to_owned();
        let provider_type = r.str().ok()?.to_owned();
        let counts = Counts {
            pending: r.uint().ok()?,
            in_flight: r.uint().ok()?,
        };
        load.providers.insert(
            provider,
            ProviderLoad {
                provider_type,
                counts,
            },
        );
    }
    r.bytes.is_empty().then_some(load)
}

/// An event's stored form, appended to `out`: its JSON (serde's encoding of every field, read
/// back identical). Nothing is appended if encoding fails, as it cannot for an event of strings
/// and string maps.
pub(crate) fn encode_event_into(out: &mut Vec<u8>, event: &Event) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, event).is_err() {
        out.truncate(start);
    }
}

/// The event of delivery `id` from its stored form.
pub(crate) fn decode_event(id: u64, bytes: &[u8]) -> Result<Event, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        id,
        what: "its event",
        message: e.to_string(),
    })
}

/// Appends one change of a commit to `out`, for the redo log: `table ‖ varint(key length) ‖
/// key ‖ varint(0)` for a removal, `… ‖ varint(value length + 1) ‖ value` for a write.
pub(crate) fn encode_change(out: &mut Vec<u8>, table: u8, key: &[u8], value: Option<&[u8]>) {
    let mut w = Writer(std::mem::take(out));
    w.0.push(table);
    w.uint(key.len() as u64);
    w.0.extend_from_slice(key);
    match value {
        None => w.uint(0),
        Some(v) => {
            w.uint(v.len() as u64 + 1);
            w.0.extend_from_slice(v);
        }
    }
    *out = w.0;
}

/// One change decoded from the redo log: the table, the key, and the new value (`None`:
/// removed).
pub(crate) type Change<'a> = (u8, &'a [u8], Option<&'a [u8]>);

/// The changes [`encode_change`] wrote, in order.
pub(crate) fn decode_changes(bytes: &[u8]) -> Result<Vec<Change<'_>>, String> {
    let mut r = Reader { bytes };
    let mut out = Vec::new();
    while !r.bytes.is_empty() {
        let table = r.byte()?;
        let key = r.take()?;
        let value = match r.uint()? {
            0 => None,
            n => Some(r.bytes_of(n - 1)?),
        };
        out.push((table, key, value));
    }
    Ok(out)
}

/// A delivery's row (a redb value, a JetStream message): `varint(record length) ‖ record ‖ event JSON` (no event once delivered).
pub(crate) fn row(record: &[u8], event: Option<&[u8]>) -> Vec<u8> {
    let mut out = row_head(record, event.map_or(0, <[u8]>::len));
    out.extend_from_slice(event.unwrap_or_default());
    out
}

/// A new delivery's row, its event encoded straight into it (no copy of the JSON).
pub(crate) fn new_row(record: &[u8], event: &Event) -> Vec<u8> {
    /// About what a Flux event takes as JSON: one allocation for most rows.
    const EVENT_BYTES: usize = 1024;
    let mut out = row_head(record, EVENT_BYTES);
    encode_event_into(&mut out, event);
    out
}

/// `varint(record length) ‖ record`, with room for `more` bytes after it.
fn row_head(record: &[u8], more: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + record.len() + more);
    let mut len = record.len() as u64;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(record);
    out
}

/// A row's record and event parts.
pub(crate) fn split_row(id: u64, bytes: &[u8]) -> Result<(&[u8], Option<&[u8]>), StoreError> {
    let corrupt = || StoreError::Corrupt {
        id,
        what: "its record",
        message: "the row is cut short".into(),
    };
    let mut len = 0usize;
    let mut at = 0;
    loop {
        let b = *bytes.get(at).ok_or_else(corrupt)?;
        len |= usize::from(b & 0x7f) << (7 * at);
        at += 1;
        if b < 0x80 {
            break;
        }
        if at > 4 {
            return Err(corrupt());
        }
    }
    let end = at
        .checked_add(len)
        .filter(|e| *e <= bytes.len())
        .ok_or_else(corrupt)?;
    let event = &bytes[end..];
    Ok((&bytes[at..end], (!event.is_empty()).then_some(event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            id: 7,
            provider: "flux-system/slack".into(),
            provider_type: "slack".into(),
            alert: "flux-system/on-call".into(),
            object: "Kustomization/apps/web".into(),
            reason: "HealthCheckFailed".into(),
            key: OrderingKey(0xdead_beef_0123_4567),
            accepted_at: 1_764_000_000_123,
            state: State::Dead,
            dead_reason: Some(DeadReason::MaxAge),
            attempts: 300,
            failures: 299,
            clock_from: 1_764_000_000_123,
            last_attempt_at: Some(1_764_086_400_000),
            last_error: Some("HTTP 503: é \u{2028}".into()),
            next_attempt_at: None,
            finished_at: Some(0),
        }
    }

    #[test]
    fn a_record_is_encoded_in_the_room_it_first_takes() {
        let longest = Record {
            accepted_at: u64::MAX,
            attempts: u32::MAX,
            failures: u32::MAX,
            clock_from: u64::MAX,
            last_attempt_at: Some(u64::MAX - 1),
            next_attempt_at: Some(u64::MAX - 1),
            finished_at: Some(u64::MAX - 1),
            ..record()
        };
        for r in [
            record(),
            longest,
            Record {
                last_error: None,
                ..record()
            },
        ] {
            let bytes = encode_record(&r);
            assert_eq!(bytes.capacity(), record_room(&r), "it grew: {r:?}");
            assert_eq!(decode_record(r.id, &bytes).unwrap(), r);
        }
    }

    #[test]
    fn records_round_trip_and_stay_small() {
        let r = record();
        let bytes = encode_record(&r);
        assert_eq!(decode_record(7, &bytes).unwrap(), r);
        // Against about 450 bytes of JSON for the same record.
        assert!(bytes.len() < 160, "{} bytes", bytes.len());
        let mut fresh = r.clone();
        fresh.state = State::Pending;
        fresh.dead_reason = None;
        fresh.attempts = 0;
        fresh.failures = 0;
        fresh.last_attempt_at = None;
        fresh.last_error = None;
        fresh.finished_at = None;
        fresh.next_attempt_at = Some(u64::MAX);
        let back = decode_record(7, &encode_record(&fresh)).unwrap();
        assert_eq!(back.next_attempt_at, Some(u64::MAX - 1), "saturates");
        fresh.next_attempt_at = None;
        assert_eq!(decode_record(7, &encode_record(&fresh)).unwrap(), fresh);
    }

    #[test]
    fn damaged_records_are_errors_that_name_the_delivery() {
        let bytes = encode_record(&record());
        for cut in [0, 1, 10, bytes.len() - 1] {
            let e = decode_record(9, &bytes[..cut]).unwrap_err().to_string();
            assert!(
                e.starts_with("delivery 9: its record is unreadable: "),
                "{e}"
            );
        }
        let mut bad = bytes.clone();
        bad[0] = 99;
        let e = decode_record(9, &bad).unwrap_err().to_string();
        assert!(e.contains("unknown encoding version 99"), "{e}");
        assert!(decode_record(9, &[1, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn changes_round_trip_and_damaged_ones_are_errors() {
        let mut out = Vec::new();
        encode_change(&mut out, 1, b"key", Some(b"value"));
        encode_change(&mut out, 2, &[0; 200], None);
        encode_change(&mut out, 3, b"", Some(b""));
        let changes = decode_changes(&out).unwrap();
        assert_eq!(
            changes,
            vec![
                (1, b"key".as_slice(), Some(b"value".as_slice())),
                (2, [0; 200].as_slice(), None),
                (3, b"".as_slice(), Some(b"".as_slice())),
            ]
        );
        assert_eq!(decode_changes(&[]).unwrap(), vec![]);
        let cut = &out[..out.len() - 1];
        assert_eq!(decode_changes(cut).unwrap_err(), "it ends too early");
    }

    #[test]
    fn statuses_round_trip() {
        let s = ProviderStatus {
            last_success_at: Some(5),
            last_error: Some("boom".into()),
            last_error_at: Some(6),
            consecutive_failures: 1 << 40,
            failing_since: None,
        };
        assert_eq!(decode_status(&encode_status(&s)), Some(s));
        assert_eq!(
            decode_status(&encode_status(&ProviderStatus::default())),
            Some(ProviderStatus::default())
        );
        assert_eq!(decode_status(b"{}"), None);
    }

    #[test]
    fn loads_round_trip_and_bad_ones_are_none() {
        let mut load = Load::default();
        load.add_pending("flux-system/slack", "slack", 1 << 33);
        load.add_pending("apps/hook", "generic", 3);
        if let Some(p) = load.providers.get_mut("apps/hook") {
            p.counts.in_flight = 2;
        }
        let bytes = encode_load(&load);
        assert_eq!(decode_load(&bytes), Some(load));
        assert_eq!(
            decode_load(&encode_load(&Load::default())),
            Some(Load::default())
        );
        for cut in 0..bytes.len() {
            assert_eq!(decode_load(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_load(&longer), None, "trailing bytes");
        // The heartbeat of a replica before counts were published: its name.
        assert_eq!(decode_load(b"replica-1"), None);
        // A count of Providers far over what follows ends early, without allocating for it.
        assert_eq!(
            decode_load(&[LOAD_VERSION, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            None
        );
    }
}
