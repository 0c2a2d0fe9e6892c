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
//!
//! Replies are walked in place in the connection's buffer (`broker::resp::Cursor`): the
//! messages of one XREADGROUP are copied once into one buffer of this input, and entry ids
//! are kept as two numbers, not text.

use super::csv::InputState;
use super::input_common::{Fetch, Input, InputError};
use crate::broker::resp::{encode_command, Cursor, Item, RespConnection, RespError};
use crate::broker::StartError;
use crate::sink::{RedisConfig, RedisGroup};
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::time::Instant;

/// How long one XREADGROUP waits for new entries before the recorder counts as idle.
const BLOCK_MS: u64 = 500;
/// Entries read per round trip at most.
const FETCH_MAX: usize = 1024;
/// Ids per XACK command.
const ACK_CHUNK: usize = 4096;

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

/// A stream entry id, `<milliseconds>-<sequence>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct EntryId {
    ms: u64,
    seq: u64,
}

impl EntryId {
    /// `<ms>-<seq>` as Redis writes it; `None` for anything else.
    pub(crate) fn parse(b: &[u8]) -> Option<EntryId> {
        let text = std::str::from_utf8(b).ok()?;
        let (ms, seq) = text.split_once('-')?;
        Some(EntryId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    fn write(self, out: &mut Vec<u8>) {
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(self.ms).as_bytes());
        out.push(b'-');
        out.extend_from_slice(b.format(self.seq).as_bytes());
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry read: which of the input's streams, its id, and where its `msg` field is in
/// the input's message buffer (None: its data was trimmed away; no `msg` field: empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: usize,
    id: EntryId,
    body: Option<(usize, usize)>,
}

/// What went wrong with one command: the connection, or the server's error reply.
#[derive(Debug)]
enum CallError {
    Resp(RespError),
    /// `-CODE message`.
    Server(String),
}

impl CallError {
    fn code(&self) -> Option<&str> {
        match self {
            CallError::Server(t) => t.split_whitespace().next(),
            CallError::Resp(_) => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Resp(e) => write!(f, "{e}"),
            CallError::Server(t) => f.write_str(t),
        }
    }
}

impl From<RespError> for CallError {
    fn from(e: RespError) -> Self {
        CallError::Resp(e)
    }
}

/// Sends the command in `cmd` and reads its whole reply; an error reply is an error.
fn call<'c>(con: &'c mut RespConnection, cmd: &[u8]) -> Result<&'c [u8], CallError> {
    con.send(cmd)?;
    let frame = con.read_frame()?;
    if let Some(text) = frame.strip_prefix(b"-") {
        let text = text.strip_suffix(b"\r\n").unwrap_or(text);
        return Err(CallError::Server(
            String::from_utf8_lossy(text).into_owned(),
        ));
    }
    Ok(frame)
}

/// `[[id, [field, value, ...] | nil], ...]` of stream `key` into `out`, the `msg` values
/// copied to the end of `bodies`.
fn parse_entries(
    cur: &mut Cursor,
    key: usize,
    bodies: &mut Vec<u8>,
    out: &mut Vec<Entry>,
) -> Result<(), RespError> {
    let bad = |what: String| RespError::Protocol(what);
    let n = cur.array()?.unwrap_or(0);
    for _ in 0..n {
        if cur.array()? != Some(2) {
            return Err(bad("a stream entry that is not [id, fields]".into()));
        }
        let id = cur
            .bulk()?
            .and_then(EntryId::parse)
            .ok_or_else(|| bad("a stream entry without a valid id".into()))?;
        let body = match cur.next_item()? {
            // A pending entry whose data MAXLEN trimmed away.
            Item::Array(None) | Item::Bulk(None) => None,
            Item::Array(Some(f)) => {
                let mut body = (bodies.len(), 0);
                for _ in 0..f / 2 {
                    let name = cur.bulk()?;
                    let value = cur.bulk()?;
                    if name == Some(b"msg") && body.1 == 0 {
                        let v = value.unwrap_or_default();
                        body = (bodies.len(), v.len());
                        bodies.extend_from_slice(v);
                    }
                }
                if f % 2 == 1 {
                    cur.skip()?;
                }
                Some(body)
            }
            other => return Err(bad(format!("stream entry fields {other:?}"))),
        };
        out.push(Entry { key, id, body });
    }
    Ok(())
}

/// XREADGROUP's reply (`nil`, or `[[stream, entries], ...]`) into entries, streams named
/// by their place in `keys`. Returns the streams the reply named, as a bit per place.
fn parse_read(
    frame: &[u8],
    keys: &[String],
    bodies: &mut Vec<u8>,
    out: &mut Vec<Entry>,
) -> Result<Vec<bool>, RespError> {
    let mut named = vec![false; keys.len()];
    let mut cur = Cursor::new(frame);
    let Some(streams) = cur.array()? else {
        return Ok(named);
    };
    for _ in 0..streams {
        if cur.array()? != Some(2) {
            return Err(RespError::Protocol(
                "XREADGROUP stream not [name, entries]".into(),
            ));
        }
        let name = cur.bulk()?.unwrap_or_default();
        let key = keys
            .iter()
            .position(|k| k.as_bytes() == name)
            .ok_or_else(|| {
                RespError::Protocol(format!(
                    "XREADGROUP answered for stream {:?}, not asked for",
                    String::from_utf8_lossy(name)
                ))
            })?;
        named[key] = true;
        parse_entries(&mut cur, key, bodies, out)?;
    }
    Ok(named)
}

/// A Redis stream read through a consumer group: the [`Input`] of
/// `record --redis-mode stream` (see the module documentation).
pub struct StreamInput {
    cfg: RedisConfig,
    group: RedisGroup,
    /// The streams read (one, or the selected partitions `<queue>-<n>`).
    keys: Vec<String>,
    con: RespConnection,
    /// The command being built (reused).
    cmd: Vec<u8>,
    /// The `msg` values of the entries in `ready` (cleared whenever `ready` runs empty).
    bodies: Vec<u8>,
    /// Entries just parsed (reused).
    got: Vec<Entry>,
    /// Read and not yet handed out, oldest first (pending with this consumer).
    ready: VecDeque<Entry>,
    /// Handed out since the last commit: acknowledged after it.
    taken: Vec<(usize, EntryId)>,
    /// Per stream: re-reading this consumer's own pending entries after this id; None once
    /// done (or never: a stream whose backlog was read to its end).
    backlog_after: Vec<Option<EntryId>>,
    /// XAUTOCLAIM's stream and cursor while a pass is under way.
    claim_cursor: Option<(usize, EntryId)>,
    claim_checked: Instant,
    hold_refreshed: Instant,
    max_line_bytes: u64,
    /// The last entry handed out.
    last: Option<(usize, EntryId)>,
    trimmed: u64,
    claimed: u64,
}

impl StreamInput {
    /// Opens the group on each of `keys` (the stream names read, in partition order).
    pub fn open(
        cfg: RedisConfig,
        group: RedisGroup,
        keys: Vec<String>,
        resumed: &InputState,
        max_line_bytes: u64,
    ) -> Result<StreamInput, StartError> {
        let con = crate::broker::redis::connect(&cfg.endpoint)?;
        let n = keys.len();
        let mut input = StreamInput {
            cfg,
            group,
            keys,
            con,
            cmd: Vec::with_capacity(4096),
            bodies: Vec::new(),
            got: Vec::new(),
            ready: VecDeque::new(),
            taken: Vec::new(),
            backlog_after: vec![Some(EntryId { ms: 0, seq: 0 }); n],
            claim_cursor: Some((0, EntryId { ms: 0, seq: 0 })),
            claim_checked: Instant::now(),
            hold_refreshed: Instant::now(),
            max_line_bytes,
            last: None,
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
        for key in input.keys.clone() {
            input.cmd.clear();
            encode_command(
                &mut input.cmd,
                &[
                    b"XGROUP",
                    b"CREATE",
                    key.as_bytes(),
                    input.group.group.as_bytes(),
                    input.group.start.as_bytes(),
                    b"MKSTREAM",
                ],
            );
            match call(&mut input.con, &input.cmd) {
                Ok(_) => super::log(format_args!(
                    "{source}: created the group on {key}, starting at {}",
                    if input.group.start == "$" {
                        "new entries"
                    } else {
                        "the stream's first entry"
                    }
                )),
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(fail(format!("XGROUP CREATE {key}: {e}"))),
            }
        }
        if resumed.source == source && resumed.consumer == input.group.consumer {
            // Committed by the last run: XACK again (a crash may have come before its XACK).
            let ids = input.parse_state_ids(&resumed.redelivery_hashes);
            input.ack(&ids).map_err(fail)?;
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
        match self.keys.as_slice() {
            [one] => format!(
                "{} stream {} group {}",
                self.cfg.describe(),
                one,
                self.group.group
            ),
            keys => format!(
                "{} streams {} group {}",
                self.cfg.describe(),
                keys.join(","),
                self.group.group
            ),
        }
    }

    /// The state file's ids: `<id>` with one stream, `<stream> <id>` with several.
    fn state_id(&self, key: usize, id: EntryId) -> String {
        if self.keys.len() == 1 {
            id.to_string()
        } else {
            format!("{} {id}", self.keys[key])
        }
    }

    fn parse_state_ids(&self, list: &[String]) -> Vec<(usize, EntryId)> {
        list.iter()
            .filter_map(|s| {
                let (key, id) = match s.rsplit_once(' ') {
                    Some((k, id)) => (self.keys.iter().position(|x| x == k)?, id),
                    None if self.keys.len() == 1 => (0, s.as_str()),
                    None => return None,
                };
                Some((key, EntryId::parse(id.as_bytes())?))
            })
            .collect()
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

    /// Acknowledges `ids`: one XACK per stream and chunk, all written before any reply is
    /// read.
    fn ack(&mut self, ids: &[(usize, EntryId)]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        self.cmd.clear();
        let mut commands = 0;
        let mut text = Vec::with_capacity(48);
        for key in 0..self.keys.len() {
            let mine: Vec<EntryId> = ids
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, id)| *id)
                .collect();
            for chunk in mine.chunks(ACK_CHUNK) {
                // *<3 + ids>\r\n$4\r\nXACK ... built by hand: one buffer for all ids.
                self.cmd.push(b'*');
                self.cmd
                    .extend_from_slice(itoa::Buffer::new().format(3 + chunk.len()).as_bytes());
                self.cmd.extend_from_slice(b"\r\n");
                for arg in [
                    &b"XACK"[..],
                    self.keys[key].as_bytes(),
                    self.group.group.as_bytes(),
                ] {
                    crate::broker::resp::bulk_header(&mut self.cmd, arg.len());
                    self.cmd.extend_from_slice(arg);
                    self.cmd.extend_from_slice(b"\r\n");
                }
                for id in chunk {
                    text.clear();
                    id.write(&mut text);
                    crate::broker::resp::bulk_header(&mut self.cmd, text.len());
                    self.cmd.extend_from_slice(&text);
                    self.cmd.extend_from_slice(b"\r\n");
                }
                commands += 1;
            }
        }
        self.con.send(&self.cmd).map_err(|e| format!("XACK: {e}"))?;
        let mut first_error = None;
        for _ in 0..commands {
            let frame = self.con.read_frame().map_err(|e| format!("XACK: {e}"))?;
            if let (Some(b'-'), None) = (frame.first(), &first_error) {
                first_error = Some(format!(
                    "XACK: {}",
                    String::from_utf8_lossy(&frame[1..]).trim_end()
                ));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The entries held: read and not yet acknowledged (in `ready` or `taken`).
    fn held(&self) -> HashSet<(usize, EntryId)> {
        self.ready
            .iter()
            .map(|e| (e.key, e.id))
            .chain(self.taken.iter().copied())
            .collect()
    }

    /// Keeps what was parsed into `got`: trimmed entries are acknowledged and counted; with
    /// `dedupe` (entries that may be held already: own pending ones read again, or taken
    /// over by XAUTOCLAIM) those already held are left out. New entries (`>`) never are.
    fn keep(&mut self, dedupe: bool) -> Result<(), String> {
        let mut gone = Vec::new();
        let mut held = if dedupe { self.held() } else { HashSet::new() };
        for e in self.got.drain(..) {
            if e.body.is_none() {
                gone.push((e.key, e.id));
            } else if !dedupe || held.insert((e.key, e.id)) {
                self.ready.push_back(e);
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

    fn args_with_ids<'a>(&mut self, args: &[&[u8]], ids: impl Iterator<Item = &'a EntryId>) {
        let ids: Vec<Vec<u8>> = ids
            .map(|id| {
                let mut t = Vec::with_capacity(24);
                id.write(&mut t);
                t
            })
            .collect();
        let mut all: Vec<&[u8]> = args.to_vec();
        all.extend(ids.iter().map(Vec::as_slice));
        self.cmd.clear();
        encode_command(&mut self.cmd, &all);
    }

    /// One XAUTOCLAIM step: takes over up to `count` entries idle longer than the claim time.
    fn claim(&mut self, count: usize) -> Result<(), String> {
        let (key, cursor) = self.claim_cursor.unwrap_or((0, EntryId { ms: 0, seq: 0 }));
        let idle = self.group.claim_idle.as_millis().to_string();
        let count_text = count.to_string();
        let mut cursor_text = Vec::new();
        cursor.write(&mut cursor_text);
        self.cmd.clear();
        encode_command(
            &mut self.cmd,
            &[
                b"XAUTOCLAIM",
                self.keys[key].as_bytes(),
                self.group.group.as_bytes(),
                self.group.consumer.as_bytes(),
                idle.as_bytes(),
                &cursor_text,
                b"COUNT",
                count_text.as_bytes(),
            ],
        );
        if self.ready.is_empty() {
            self.bodies.clear();
        }
        let frame = call(&mut self.con, &self.cmd).map_err(|e| format!("XAUTOCLAIM: {e}"))?;
        let mut cur = Cursor::new(frame);
        let parts = cur
            .array()
            .map_err(|e| format!("XAUTOCLAIM: {e}"))?
            .unwrap_or(0);
        if parts < 2 {
            return Err(format!("unexpected XAUTOCLAIM reply of {parts} part(s)"));
        }
        let next = cur
            .bulk()
            .ok()
            .flatten()
            .and_then(EntryId::parse)
            .ok_or("XAUTOCLAIM: no valid next cursor")?;
        parse_entries(&mut cur, key, &mut self.bodies, &mut self.got)
            .map_err(|e| format!("XAUTOCLAIM: {e}"))?;
        let held = self.held();
        let fresh = self
            .got
            .iter()
            .filter(|e| e.body.is_some() && !held.contains(&(e.key, e.id)))
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
        self.keep(true)?;
        if next == (EntryId { ms: 0, seq: 0 }) {
            if key + 1 < self.keys.len() {
                self.claim_cursor = Some((key + 1, next));
            } else {
                self.claim_cursor = None;
                self.claim_checked = Instant::now();
            }
        } else {
            self.claim_cursor = Some((key, next));
        }
        Ok(())
    }

    /// Reads up to `count` entries: own pending ones first, then new ones (waiting up to
    /// BLOCK_MS when there are none).
    fn read(&mut self, count: usize, block: bool) -> Result<(), String> {
        let backlog = self.backlog_after.iter().any(Option::is_some);
        // With several streams COUNT holds per stream: share the room out.
        let per_key = count.div_ceil(self.keys.len()).max(1).to_string();
        let mut args: Vec<&[u8]> = vec![
            b"XREADGROUP",
            b"GROUP",
            self.group.group.as_bytes(),
            self.group.consumer.as_bytes(),
            b"COUNT",
            per_key.as_bytes(),
        ];
        let block_text = BLOCK_MS.to_string();
        if block && !backlog {
            args.extend([&b"BLOCK"[..], block_text.as_bytes()]);
        }
        args.push(b"STREAMS");
        let read_keys: Vec<usize> = (0..self.keys.len())
            .filter(|&k| !backlog || self.backlog_after[k].is_some())
            .collect();
        let ids: Vec<Vec<u8>> = read_keys
            .iter()
            .map(|&k| match self.backlog_after[k] {
                Some(id) => {
                    let mut t = Vec::with_capacity(24);
                    id.write(&mut t);
                    t
                }
                None => b">".to_vec(),
            })
            .collect();
        args.extend(read_keys.iter().map(|&k| self.keys[k].as_bytes()));
        args.extend(ids.iter().map(Vec::as_slice));
        self.cmd.clear();
        encode_command(&mut self.cmd, &args);
        if self.ready.is_empty() {
            self.bodies.clear();
        }
        let frame = call(&mut self.con, &self.cmd).map_err(|e| format!("XREADGROUP: {e}"))?;
        let before = self.got.len();
        parse_read(frame, &self.keys, &mut self.bodies, &mut self.got)
            .map_err(|e| format!("XREADGROUP: {e}"))?;
        if backlog {
            for &k in &read_keys {
                // The last of this stream's entries read, if any: the backlog goes on after
                // it; none: this stream's backlog is done.
                self.backlog_after[k] = self.got[before..]
                    .iter()
                    .rev()
                    .find(|e| e.key == k)
                    .map(|e| e.id);
            }
        }
        self.keep(backlog)
    }

    /// Resets the idle time of every entry held, or fails if one was taken over.
    fn hold(&mut self) -> Result<(), InputError> {
        let held = self.held();
        if held.is_empty() {
            self.hold_refreshed = Instant::now();
            return Ok(());
        }
        for key in 0..self.keys.len() {
            let ids: Vec<EntryId> = held
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, id)| *id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let stream = self.keys[key].clone();
            let group = self.group.group.clone();
            let consumer = self.group.consumer.clone();
            self.args_with_ids(
                &[
                    b"EVAL",
                    HOLD_SCRIPT.as_bytes(),
                    b"1",
                    stream.as_bytes(),
                    group.as_bytes(),
                    consumer.as_bytes(),
                ],
                ids.iter(),
            );
            let lost = match call(&mut self.con, &self.cmd) {
                Ok(frame) => match Cursor::new(frame).next_item() {
                    Ok(Item::Bulk(Some(id))) => Some(String::from_utf8_lossy(id).into_owned()),
                    Ok(_) => None,
                    Err(e) => return Err(self.error("holding the entries read", e)),
                },
                Err(e) => return Err(self.error("holding the entries read", e)),
            };
            if let Some(id) = lost {
                return Err(InputError(format!(
                    "{}: entry {id} of {stream} read by consumer {} was taken over by another \
                     recorder of the group (this one stalled longer than {} ms): it stops \
                     without saving what it holds, which the other recorder records",
                    self.source(),
                    self.group.consumer,
                    self.group.claim_idle.as_millis()
                )));
            }
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
        if self.ready.is_empty() {
            // Once per read, not per message: a read's entries are handed out in far less
            // than a third of the claim time, and before_commit holds them again anyway.
            self.housekeeping(room)?;
        }
        if self.ready.is_empty() {
            self.read(room.clamp(1, FETCH_MAX), true)
                .map_err(|e| self.error("reading", e))?;
        }
        let Some(entry) = self.ready.pop_front() else {
            return Ok(Fetch::Idle);
        };
        self.taken.push((entry.key, entry.id));
        self.last = Some((entry.key, entry.id));
        let (start, len) = entry.body.unwrap_or_default();
        if len as u64 > self.max_line_bytes {
            return Ok(Fetch::TooLong(len as u64));
        }
        buf.clear();
        buf.extend_from_slice(&self.bodies[start..start + len]);
        Ok(Fetch::Message)
    }

    fn position(&self) -> String {
        match self.last {
            Some((key, id)) if self.keys.len() > 1 => {
                format!("{} entry {} {id}", self.source(), self.keys[key])
            }
            Some((_, id)) => format!("{} entry {id}", self.source()),
            None => format!("{} entry -", self.source()),
        }
    }

    /// The entry stays pending with this consumer (a stream has nothing to push back to):
    /// it is handed out again by this run, or read again at the next start.
    fn give_back_last(&mut self) -> Result<(), InputError> {
        if let Some((key, id)) = self.taken.pop() {
            // Read it again by id (its bytes may be gone from the buffer).
            let stream = self.keys[key].clone();
            let mut text = Vec::new();
            id.write(&mut text);
            self.cmd.clear();
            encode_command(&mut self.cmd, &[b"XRANGE", stream.as_bytes(), &text, &text]);
            let mut got = Vec::new();
            let parsed = match call(&mut self.con, &self.cmd) {
                Ok(frame) => {
                    parse_entries(&mut Cursor::new(frame), key, &mut self.bodies, &mut got)
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            parsed.map_err(|e| self.error("give back", e))?;
            // None: trimmed meanwhile; it stays pending and comes back empty at the next start.
            if let Some(entry) = got.pop() {
                self.ready.push_front(entry);
            }
            self.last = self.taken.last().copied();
        }
        Ok(())
    }

    fn state(&self) -> InputState {
        InputState {
            source: self.source(),
            consumer: self.group.consumer.clone(),
            // The ids of the snapshot being committed: acknowledged again at the next start.
            redelivery_hashes: self
                .taken
                .iter()
                .map(|&(k, id)| self.state_id(k, id))
                .collect(),
            ..InputState::default()
        }
    }

    fn before_commit(&mut self) -> Result<(), InputError> {
        self.hold()
    }

    fn committed(&mut self) -> Result<(), InputError> {
        let taken = std::mem::take(&mut self.taken);
        self.ack(&taken).map_err(|e| self.error("acknowledge", e))?;
        self.taken = taken;
        self.taken.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> EntryId {
        EntryId { ms, seq }
    }

    #[test]
    fn entries_are_parsed_in_place_without_panics() {
        let keys = vec!["q".to_string(), "q-1".to_string()];
        let reply = b"*1\r\n*2\r\n$3\r\nq-1\r\n*3\r\n\
            *2\r\n$3\r\n1-0\r\n*2\r\n$3\r\nmsg\r\n$2\r\n{}\r\n\
            *2\r\n$3\r\n2-0\r\n*-1\r\n\
            *2\r\n$3\r\n3-7\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n";
        let mut bodies = Vec::new();
        let mut got = Vec::new();
        let named = parse_read(reply, &keys, &mut bodies, &mut got).unwrap();
        assert_eq!(named, vec![false, true]);
        assert_eq!(
            got,
            vec![
                Entry {
                    key: 1,
                    id: id(1, 0),
                    body: Some((0, 2))
                },
                Entry {
                    key: 1,
                    id: id(2, 0),
                    body: None
                },
                Entry {
                    key: 1,
                    id: id(3, 7),
                    body: Some((2, 0))
                },
            ]
        );
        assert_eq!(bodies, b"{}");
        for bad in [
            &b":3\r\n"[..],
            b"*1\r\n:1\r\n",
            b"*1\r\n*2\r\n$1\r\nq\r\n:1\r\n",
            b"*1\r\n*2\r\n$1\r\nq\r\n*1\r\n*0\r\n",
            b"*1\r\n*2\r\n$1\r\nq\r\n*1\r\n*2\r\n$1\r\nx\r\n*0\r\n",
            b"*1\r\n*2\r\n$5\r\nother\r\n*0\r\n",
            b"*1\r\n*2\r\n$1\r\nq\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$3\r\nmsg\r\n$9\r\n{}\r\n",
        ] {
            assert!(
                parse_read(bad, &keys, &mut Vec::new(), &mut Vec::new()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_read(b"*-1\r\n", &keys, &mut bodies, &mut got).unwrap(),
            vec![false, false]
        );
    }

    #[test]
    fn entry_ids_round_trip() {
        let e = EntryId::parse(b"1700000000000-42").unwrap();
        let mut t = Vec::new();
        e.write(&mut t);
        assert_eq!(t, b"1700000000000-42");
        assert_eq!(e.to_string(), "1700000000000-42");
        for bad in [&b""[..], b"1", b"1-", b"-1", b"a-1", b"1-2-3"] {
            assert!(EntryId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(id(1, 5) < id(2, 0));
    }
}
