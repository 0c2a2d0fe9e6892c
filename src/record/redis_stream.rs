//! `record --input redis://... --redis-mode stream --group G --consumer C`: a Redis stream
//! read through a consumer group (what `read -o redis://... --redis-mode stream` writes).
//!
//! - The group is created if missing (`XGROUP CREATE <queue> G <start> MKSTREAM`, start `0`
//!   by default: a new group gets every entry still in the stream; `--group-start '$'`: only
//!   entries added from then on). An existing group keeps its position.
//! - Entries are read with `XREADGROUP GROUP G C COUNT <room> BLOCK 500 STREAMS <queue> >`,
//!   never more than the coming snapshot has room for, and acknowledged with one `XACK` after
//!   the snapshot is committed. Until then they are in this consumer's pending entries list
//!   (PEL) in Redis, so nothing is lost when the recorder dies.
//! - At start the recorder first reads its own pending entries again (`XREADGROUP ... <id>`
//!   from `0`): what a crashed or stopped run read but had not committed. The entry ids of
//!   the last committed snapshot are kept in the state file; they are acknowledged again at
//!   start (XACK is idempotent), so a crash between the commit and the XACK records nothing
//!   twice.
//! - Several recorders in one group share the stream (each entry goes to one). A recorder
//!   that died leaves its entries pending: every recorder of the group runs `XAUTOCLAIM` with
//!   `--claim-idle-ms` (default 30 s) as min-idle-time, at start and then once per that time,
//!   and records what it takes over. While a recorder holds entries it resets their idle time
//!   every third of that time (one Lua script: `XCLAIM ... JUSTID` of the entries, only if
//!   every one is still its own), and checks the same right before each commit: a recorder
//!   that stalled so long that another took its entries over stops with an input error
//!   instead of committing them too.
//! - At-least-once: entries a dead recorder had committed but not yet acknowledged (the few
//!   microseconds between its state file and its XACK) are taken over and recorded again by
//!   another recorder of the group.
//! - Entries trimmed away (`MAXLEN`) before they were read are gone; a pending entry whose
//!   data was trimmed comes back without fields: it is counted, logged and acknowledged.
//!
//! Only the `msg` field of an entry is read (the packet JSON, as `read` writes it); an entry
//! without one is handed on empty and rejected with its id as position.

use super::csv::InputState;
use super::input::{Fetch, Input, InputError};
use crate::sink::{RedisConfig, RedisGroup, StartError};
use ::redis::Value;
use std::collections::{HashSet, VecDeque};
use std::time::Instant;

/// How long one XREADGROUP waits for new entries before the recorder counts as idle.
const BLOCK_MS: u64 = 500;
/// Entries read per round trip at most.
const FETCH_MAX: usize = 1024;

/// Resets the idle time of the entries in ARGV[3..] (XCLAIM JUSTID to this consumer) only if
/// every one of them is still pending with this consumer; else returns the first that is not.
/// KEYS[1] = stream; ARGV[1] = group, ARGV[2] = consumer.
const HOLD_SCRIPT: &str = r"
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 0 or p[1][2] ~= ARGV[2] then return ARGV[i] end
end
-- In slices: unpack() of thousands of values overflows Lua's C stack.
for i = 3, #ARGV, 500 do
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return 0
";

/// One stream entry: its id and the `msg` field (None: no such field or trimmed away).
type Entry = (String, Option<Vec<u8>>);

pub struct StreamInput {
    cfg: RedisConfig,
    group: RedisGroup,
    con: ::redis::Connection,
    /// Read and not yet handed out, oldest first (pending with this consumer).
    ready: VecDeque<Entry>,
    /// Handed out since the last commit: acknowledged after it.
    taken: Vec<String>,
    /// Ids in `ready` or `taken` (so XAUTOCLAIM of an own entry is not recorded twice).
    held: HashSet<String>,
    /// Re-reading this consumer's own pending entries after this id; None once done.
    backlog_after: Option<String>,
    /// XAUTOCLAIM's cursor while a pass is under way.
    claim_cursor: Option<String>,
    claim_checked: Instant,
    hold_refreshed: Instant,
    max_line_bytes: u64,
    /// Entries handed out over the run (for positions).
    handed_out: u64,
    last_id: String,
    trimmed: u64,
    claimed: u64,
}

fn value_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn value_text(v: &Value) -> Option<String> {
    value_bytes(v).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// `[[id, [field, value, ...] | nil], ...]` into entries; anything else is a protocol error.
fn parse_entries(v: &Value, out: &mut Vec<Entry>) -> Result<(), String> {
    let Value::Array(items) = v else {
        return Err(format!("expected a list of entries, got {v:?}"));
    };
    for item in items {
        let Value::Array(pair) = item else {
            return Err(format!("expected an entry, got {item:?}"));
        };
        let (Some(id), fields) = (pair.first().and_then(value_text), pair.get(1)) else {
            return Err(format!("entry without an id: {item:?}"));
        };
        let msg = match fields {
            Some(Value::Array(kv)) => kv
                .chunks_exact(2)
                .find(|kv| value_bytes(&kv[0]) == Some(b"msg"))
                .and_then(|kv| value_bytes(&kv[1]).map(<[u8]>::to_vec))
                .or(Some(Vec::new())),
            Some(Value::Map(kv)) => kv
                .iter()
                .find(|(k, _)| value_bytes(k) == Some(b"msg"))
                .and_then(|(_, v)| value_bytes(v).map(<[u8]>::to_vec))
                .or(Some(Vec::new())),
            // A pending entry whose data MAXLEN trimmed away.
            _ => None,
        };
        out.push((id, msg));
    }
    Ok(())
}

/// XREADGROUP's reply (`nil`, or `[[stream, entries]]`) into entries.
fn parse_read(v: &Value, out: &mut Vec<Entry>) -> Result<(), String> {
    match v {
        Value::Nil => Ok(()),
        Value::Array(streams) => {
            for s in streams {
                match s {
                    Value::Array(kv) if kv.len() == 2 => parse_entries(&kv[1], out)?,
                    other => return Err(format!("unexpected XREADGROUP stream {other:?}")),
                }
            }
            Ok(())
        }
        Value::Map(streams) => {
            for (_, entries) in streams {
                parse_entries(entries, out)?;
            }
            Ok(())
        }
        other => Err(format!("unexpected XREADGROUP reply {other:?}")),
    }
}

impl StreamInput {
    pub fn open(
        cfg: RedisConfig,
        group: RedisGroup,
        resumed: &InputState,
        max_line_bytes: u64,
    ) -> Result<StreamInput, StartError> {
        let con = crate::sink::redis::connect_for_input(&cfg)?;
        let mut input = StreamInput {
            cfg,
            group,
            con,
            ready: VecDeque::new(),
            taken: Vec::new(),
            held: HashSet::new(),
            backlog_after: Some("0".into()),
            claim_cursor: Some("0-0".into()),
            claim_checked: Instant::now(),
            hold_refreshed: Instant::now(),
            max_line_bytes,
            handed_out: 0,
            last_id: String::new(),
            trimmed: 0,
            claimed: 0,
        };
        let source = input.source();
        let fail = |e: String| {
            StartError::new(
                crate::exit::BROKER_UNREACHABLE,
                format!("input {source}: {e}"),
            )
        };
        match ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&input.cfg.queue)
            .arg(&input.group.group)
            .arg(&input.group.start)
            .arg("MKSTREAM")
            .query::<Value>(&mut input.con)
        {
            Ok(_) => super::log(format_args!(
                "{source}: created the group, starting at {}",
                if input.group.start == "$" {
                    "new entries"
                } else {
                    "the stream's first entry"
                }
            )),
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(fail(format!("XGROUP CREATE: {e}"))),
        }
        if resumed.source == source && resumed.consumer == input.group.consumer {
            // Committed by the last run: XACK again (a crash may have come before its XACK).
            input
                .ack(&resumed.redelivery_hashes.clone())
                .map_err(fail)?;
        }
        super::log(format_args!(
            "{source}: reading as consumer {} (its entries read but not saved by an earlier \
             run first)",
            input.group.consumer
        ));
        Ok(input)
    }

    /// What the state file names this input by.
    fn source(&self) -> String {
        format!(
            "{} stream {} group {}",
            self.cfg.describe(),
            self.cfg.queue,
            self.group.group
        )
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> InputError {
        InputError(format!(
            "{}: {what}: {e} (entries read and not saved stay pending with consumer {} and \
             are read again at its next start, or taken over by another recorder of the \
             group after {} ms)",
            self.source(),
            self.group.consumer,
            self.group.claim_idle.as_millis()
        ))
    }

    fn ack(&mut self, ids: &[String]) -> Result<(), String> {
        for chunk in ids.chunks(4096) {
            ::redis::cmd("XACK")
                .arg(&self.cfg.queue)
                .arg(&self.group.group)
                .arg(chunk)
                .query::<i64>(&mut self.con)
                .map_err(|e| format!("XACK: {e}"))?;
        }
        Ok(())
    }

    /// Keeps what was read: trimmed entries are acknowledged and counted, entries already
    /// held are left out.
    fn keep(&mut self, got: Vec<Entry>) -> Result<(), String> {
        let mut gone = Vec::new();
        for (id, msg) in got {
            if msg.is_none() {
                gone.push(id);
            } else if self.held.insert(id.clone()) {
                self.ready.push_back((id, msg));
            }
        }
        if !gone.is_empty() {
            self.trimmed += gone.len() as u64;
            super::log(format_args!(
                "{}: {} pending entr(y/ies) were trimmed from the stream (MAXLEN) before they \
                 were recorded: lost, acknowledged ({} so far)",
                self.source(),
                gone.len(),
                self.trimmed
            ));
            self.ack(&gone)?;
        }
        Ok(())
    }

    /// One XAUTOCLAIM step: takes over up to `count` entries idle longer than the claim time.
    fn claim(&mut self, count: usize) -> Result<(), String> {
        let cursor = self.claim_cursor.clone().unwrap_or_else(|| "0-0".into());
        let reply: Value = ::redis::cmd("XAUTOCLAIM")
            .arg(&self.cfg.queue)
            .arg(&self.group.group)
            .arg(&self.group.consumer)
            .arg(self.group.claim_idle.as_millis() as u64)
            .arg(&cursor)
            .arg("COUNT")
            .arg(count)
            .query(&mut self.con)
            .map_err(|e| format!("XAUTOCLAIM: {e}"))?;
        let Value::Array(parts) = &reply else {
            return Err(format!("unexpected XAUTOCLAIM reply {reply:?}"));
        };
        let next = parts.first().and_then(value_text).unwrap_or_default();
        let mut got = Vec::new();
        if let Some(entries) = parts.get(1) {
            parse_entries(entries, &mut got)?;
        }
        let fresh = got
            .iter()
            .filter(|(id, m)| m.is_some() && !self.held.contains(id))
            .count();
        if fresh > 0 {
            self.claimed += fresh as u64;
            super::log(format_args!(
                "{}: took over {fresh} entr(y/ies) another consumer held unacknowledged for \
                 more than {} ms",
                self.source(),
                self.group.claim_idle.as_millis()
            ));
        }
        self.keep(got)?;
        if next.is_empty() || next == "0-0" {
            self.claim_cursor = None;
            self.claim_checked = Instant::now();
        } else {
            self.claim_cursor = Some(next);
        }
        Ok(())
    }

    /// Reads up to `count` entries: own pending ones first, then new ones (waiting up to
    /// BLOCK_MS when there are none).
    fn read(&mut self, count: usize, block: bool) -> Result<(), String> {
        let mut cmd = ::redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group.group)
            .arg(&self.group.consumer)
            .arg("COUNT")
            .arg(count);
        if block && self.backlog_after.is_none() {
            cmd.arg("BLOCK").arg(BLOCK_MS);
        }
        cmd.arg("STREAMS")
            .arg(&self.cfg.queue)
            .arg(self.backlog_after.as_deref().unwrap_or(">"));
        let reply: Value = cmd
            .query(&mut self.con)
            .map_err(|e| format!("XREADGROUP: {e}"))?;
        let mut got = Vec::new();
        parse_read(&reply, &mut got)?;
        if self.backlog_after.is_some() {
            match got.last() {
                Some((id, _)) => self.backlog_after = Some(id.clone()),
                None => self.backlog_after = None,
            }
        }
        self.keep(got)
    }

    /// Resets the idle time of every entry held, or fails if one was taken over.
    fn hold(&mut self) -> Result<(), InputError> {
        if self.held.is_empty() {
            self.hold_refreshed = Instant::now();
            return Ok(());
        }
        let ids: Vec<&String> = self.held.iter().collect();
        let lost: Value = ::redis::cmd("EVAL")
            .arg(HOLD_SCRIPT)
            .arg(1)
            .arg(&self.cfg.queue)
            .arg(&self.group.group)
            .arg(&self.group.consumer)
            .arg(ids)
            .query(&mut self.con)
            .map_err(|e| self.error("holding the entries read", e))?;
        if let Some(id) = value_text(&lost) {
            return Err(InputError(format!(
                "{}: entry {id} read by consumer {} was taken over by another recorder of the \
                 group (this one stalled longer than {} ms): it stops without saving what it \
                 holds, which the other recorder records",
                self.source(),
                self.group.consumer,
                self.group.claim_idle.as_millis()
            )));
        }
        self.hold_refreshed = Instant::now();
        Ok(())
    }

    fn housekeeping(&mut self, room: usize) -> Result<(), InputError> {
        if self.hold_refreshed.elapsed() >= self.group.claim_idle / 3 {
            self.hold()?;
        }
        if self.ready.is_empty()
            && (self.claim_cursor.is_some()
                || self.claim_checked.elapsed() >= self.group.claim_idle)
        {
            self.claim(room.clamp(1, FETCH_MAX))
                .map_err(|e| self.error("taking over entries", e))?;
        }
        Ok(())
    }
}

impl Input for StreamInput {
    fn next(&mut self, buf: &mut Vec<u8>, room: usize) -> Result<Fetch, InputError> {
        self.housekeeping(room)?;
        if self.ready.is_empty() {
            self.read(room.clamp(1, FETCH_MAX), true)
                .map_err(|e| self.error("reading", e))?;
        }
        let Some((id, msg)) = self.ready.pop_front() else {
            return Ok(Fetch::Idle);
        };
        self.handed_out += 1;
        self.taken.push(id.clone());
        self.last_id = id;
        let msg = msg.unwrap_or_default();
        if msg.len() as u64 > self.max_line_bytes {
            return Ok(Fetch::TooLong(msg.len() as u64));
        }
        buf.clear();
        buf.extend_from_slice(&msg);
        Ok(Fetch::Message)
    }

    fn position(&self) -> String {
        format!("{} entry {}", self.source(), self.last_id)
    }

    /// The entry stays pending with this consumer (a stream has nothing to push back to):
    /// it is handed out again by this run, or read again at the next start.
    fn give_back_last(&mut self) -> Result<(), InputError> {
        if let Some(id) = self.taken.pop() {
            // The message bytes are not kept once handed out; read it again by id.
            let reply: Value = ::redis::cmd("XRANGE")
                .arg(&self.cfg.queue)
                .arg(&id)
                .arg(&id)
                .query(&mut self.con)
                .map_err(|e| self.error("give back", e))?;
            let mut got = Vec::new();
            parse_entries(&reply, &mut got).map_err(|e| self.error("give back", e))?;
            match got.pop() {
                Some(entry) => self.ready.push_front(entry),
                // Trimmed meanwhile: it stays pending and comes back empty at the next start.
                None => {
                    self.held.remove(&id);
                }
            }
            self.handed_out -= 1;
        }
        Ok(())
    }

    fn state(&self) -> InputState {
        InputState {
            source: self.source(),
            consumer: self.group.consumer.clone(),
            // The ids of the snapshot being committed: acknowledged again at the next start.
            redelivery_hashes: self.taken.clone(),
            ..InputState::default()
        }
    }

    fn before_commit(&mut self) -> Result<(), InputError> {
        self.hold()
    }

    fn committed(&mut self) -> Result<(), InputError> {
        let taken = std::mem::take(&mut self.taken);
        self.ack(&taken).map_err(|e| self.error("acknowledge", e))?;
        for id in &taken {
            self.held.remove(id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_are_parsed_without_panics() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("q"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("msg"), bulk("{}")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
                Value::Array(vec![bulk("3-0"), Value::Array(vec![bulk("x"), bulk("y")])]),
            ]),
        ])]);
        let mut got = Vec::new();
        parse_read(&reply, &mut got).unwrap();
        assert_eq!(
            got,
            vec![
                ("1-0".to_string(), Some(b"{}".to_vec())),
                ("2-0".to_string(), None),
                ("3-0".to_string(), Some(Vec::new())),
            ]
        );
        for bad in [
            Value::Int(3),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![bulk("q"), Value::Int(1)])]),
            Value::Array(vec![Value::Array(vec![
                bulk("q"),
                Value::Array(vec![Value::Array(vec![])]),
            ])]),
        ] {
            assert!(parse_read(&bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
        parse_read(&Value::Nil, &mut got).unwrap();
    }
}
