//! Where the recorder's messages come from, and how each source is told they are saved.
//!
//! - `file:PATH` and `-` (stdin): JSON lines. The state keeps the lines and bytes consumed and
//!   the file's device and inode, so a recorder started again on the same file (same path,
//!   device and inode, not shorter than what was consumed) and CSV goes on after the last
//!   committed line. Stdin and any other file are read from their start. A line longer than
//!   the cap (`--max-line-bytes`) is skipped to its newline without being kept in memory, and
//!   rejected with its position and length.
//! - `redis://`: reliable fetch. Each message is moved atomically (LMOVE queue → processing
//!   list, right to left) into a processing list of this recorder and snapshot generation,
//!   `<queue>.netpipe-processing.<consumer>.<generation>`; after the snapshot is committed the
//!   list is deleted (DEL is idempotent, so a crash between commit and DEL does no harm). At
//!   start the recorder deletes the list of its last committed generation (already in the
//!   CSV) and takes up the messages left in the next one (not in the CSV) before new ones.
//!   The consumer id lives in the state file, so the same OUTPUT_CSV means the same lists.
//!   Two recorders (two CSVs) on one queue split it: each LMOVE hands a message to one only.
//!
//!   A recorder that crashed and never comes back: each recorder holds a lease,
//!   `<queue>.netpipe-lease.<consumer>` (SET PX, refreshed with PEXPIRE every third of its
//!   time to live, default 30 s, NETPIPE_RECORD_LEASE_MS) and an owner record without expiry,
//!   `<queue>.netpipe-owner.<consumer>` (host name, and `committed`: the last generation its
//!   recorder committed, set right after each commit and before the list is deleted). At
//!   start and then once per lease period every recorder on the queue looks for processing
//!   lists whose owner has no lease. For each such list one Lua script checks again that the
//!   lease is absent and, atomically, either moves the list back to the consumer end of the
//!   queue (LMOVE, so the oldest message is taken first) or deletes it. It deletes it only when
//!   the owner record says the generation is committed: the owner crashed between its commit
//!   and its DEL, and the messages are in the owner's CSV. Nothing read from the broker is
//!   ever used as a path (an owner record is writable by anyone who can write the queue, so a
//!   file named there could make a root recorder read /dev/zero or a secret). Without that
//!   proof (a crash between writing the state file and the `committed` mark, a few
//!   microseconds) the list goes back to the queue, and in that one case a message can be
//!   recorded twice (at-least-once). A recorder whose lease
//!   was found expired (it stalled longer than the time to live) stops with an input error
//!   instead of committing, because its messages may have been handed to another recorder;
//!   it checks the lease right before each commit, so only a stall of more than the time to
//!   live inside the snapshot write itself is left to that at-least-once window.
//! - `redis://` with `--redis-mode stream --group G --consumer C`: a consumer group on a
//!   stream, see [`super::redis_stream`] (XREADGROUP, XACK after the commit, XAUTOCLAIM).
//! - `amqp://`: manual acks with a prefetch window the size of a snapshot; after the commit one
//!   `basic.ack(multiple)` acknowledges the snapshot. A crash after the commit but before the
//!   ack makes the broker deliver that snapshot's messages again (flagged `redelivered`): the
//!   state keeps a hash of each of them, and redelivered messages whose hash is there are
//!   acknowledged without a second row. (Messages identical byte for byte are
//!   interchangeable, so a hash match is always a right match when the multiset is kept.)

use super::csv::InputState;
use super::input_common::{Fetch, Input, InputError, IDLE_WAIT};
use crate::broker::resp::{self, RedisError, RespConnection};
use crate::broker::{redact, StartError};
use crate::sink::{AmqpConfig, OutputOptions, RedisConfig, RedisFormat};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Default cap of one input line or message (`--max-line-bytes`).
pub const DEFAULT_MAX_LINE_BYTES: u64 = 64 << 20;

/// Opens the input named by `url`.
pub fn open(
    url: &str,
    options: &OutputOptions,
    partitions: &super::Partitions,
    prefetch: u16,
    resumed: &InputState,
    max_line_bytes: u64,
) -> Result<Box<dyn Input>, StartError> {
    let is_broker = [
        "redis://",
        "rediss://",
        "amqp://",
        "amqps://",
        "rabbitmq-stream://",
        "rabbitmq-stream+tls://",
    ]
    .iter()
    .any(|p| url.starts_with(p));
    if options.password.is_some() && !is_broker {
        return Err(StartError::new(
            crate::exit::USAGE,
            format!(
                "a password file was given, but input \"{}\" takes no password (only \
                 redis://, rediss://, amqp:// and amqps:// do)",
                redact(url)
            ),
        ));
    }
    // The sink's parsers say "output"; here the URL is the input.
    let as_input = |e: String| {
        StartError::new(
            crate::exit::USAGE,
            e.replacen("bad output URL", "bad input URL", 1),
        )
    };
    if options.redis_group.is_some()
        && !url.starts_with("redis://")
        && !url.starts_with("rediss://")
    {
        return Err(StartError::new(
            crate::exit::USAGE,
            format!(
                "--redis-mode stream needs a redis:// input, not \"{}\"",
                redact(url)
            ),
        ));
    }
    let is_stream = url.starts_with("rabbitmq-stream://")
        || url.starts_with("rabbitmq-stream+tls://")
        || options.redis_group.is_some();
    let is_redis_list = (url.starts_with("redis://") || url.starts_with("rediss://"))
        && options.redis_group.is_none();
    if partitions.count > 1 && !is_stream && !(is_redis_list && partitions.selected.len() == 1) {
        return Err(StartError::new(
            crate::exit::USAGE,
            format!(
                "--partitions: input \"{}\" {}",
                redact(url),
                if is_redis_list {
                    "is a Redis list, read one partition at a time: start one recorder per \
                     partition with --partition I, or use --redis-mode stream, which reads \
                     several"
                } else {
                    "has no partitions (only Redis and RabbitMQ streams and Redis lists do)"
                }
            ),
        ));
    }
    if url == "-" {
        if resumed.source == "-" && resumed.lines > 0 {
            super::log(format_args!(
                "stdin is read from its first line: the {} line(s) of the recording being \
                 resumed came from an earlier stdin, not this one",
                resumed.lines
            ));
        }
        return Ok(Box::new(Lines::new(
            Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
            "stdin".into(),
            "-".into(),
            None,
            max_line_bytes,
        )));
    }
    if let Some(path) = url.strip_prefix("file:") {
        let path = PathBuf::from(path);
        let open_error = |e: io::Error| {
            StartError::new(
                crate::exit::INPUT_UNREADABLE,
                format!("cannot open input {}: {e}", path.display()),
            )
        };
        let mut f = File::open(&path).map_err(open_error)?;
        let meta = f.metadata().map_err(open_error)?;
        let identity = FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            birth_ns: meta
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        };
        let mut lines = Lines::new(
            Box::new(BufReader::with_capacity(
                1 << 20,
                f.try_clone().map_err(open_error)?,
            )),
            path.display().to_string(),
            url.to_string(),
            Some(identity),
            max_line_bytes,
        );
        let same_file = resumed.source == url
            && resumed.bytes > 0
            && resumed.file_dev == identity.dev
            && resumed.file_ino == identity.ino
            && (resumed.file_birth_ns == 0 || resumed.file_birth_ns == identity.birth_ns)
            && meta.len() >= resumed.bytes;
        if same_file {
            // Lines already committed: skipped by seeking past them.
            f.seek(SeekFrom::Start(resumed.bytes)).map_err(open_error)?;
            lines.reader = Box::new(BufReader::with_capacity(1 << 20, f));
            lines.line = resumed.lines;
            lines.bytes = resumed.bytes;
        } else if resumed.lines > 0 {
            super::log(format_args!(
                "{} is read from its first line: the recording being resumed consumed {} \
                 line(s) of {} (device {}, inode {}, {} bytes), and this is not that file \
                 (device {}, inode {}, {} bytes)",
                path.display(),
                resumed.lines,
                resumed.source,
                resumed.file_dev,
                resumed.file_ino,
                resumed.bytes,
                identity.dev,
                identity.ino,
                meta.len()
            ));
        }
        return Ok(Box::new(lines));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let mut opts = options.clone();
        // The input only reads: no kombu binding writes at connect.
        opts.redis_format = RedisFormat::Raw;
        let mut cfg = RedisConfig::parse(url, &opts).map_err(as_input)?;
        let keys = partitions.names(&cfg.queue);
        if let Some(group) = &options.redis_group {
            return Ok(Box::new(super::redis_stream::StreamInput::open(
                cfg,
                group.clone(),
                keys,
                resumed,
                max_line_bytes,
            )?));
        }
        // A list reads one partition (checked above): the queue is its name.
        cfg.queue = keys[0].clone();
        return Ok(Box::new(RedisInput::open(cfg, resumed)?));
    }
    if url.starts_with("rabbitmq-stream://") || url.starts_with("rabbitmq-stream+tls://") {
        return super::stream_input::open(url, options, partitions);
    }
    if url.starts_with("amqp://") || url.starts_with("amqps://") {
        let cfg = AmqpConfig::parse(url, options).map_err(as_input)?;
        return Ok(Box::new(super::amqp_input::AmqpInput::open(
            cfg, prefetch, resumed,
        )?));
    }
    Err(StartError::new(
        crate::exit::USAGE,
        format!(
            "bad input \"{}\": expected redis://..., amqp://..., file:PATH or -",
            redact(url)
        ),
    ))
}

/// A file's device and inode: the same path may name another file on the next run.
#[derive(Clone, Copy)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    /// 0: not known.
    birth_ns: u64,
}

/// JSON lines from a file or stdin.
struct Lines {
    reader: Box<dyn BufRead>,
    name: String,
    source: String,
    /// `file:` inputs only (stdin is never resumed).
    identity: Option<FileIdentity>,
    /// Lines consumed and committed or about to be (the last one given back excluded).
    line: u64,
    /// Bytes of those lines.
    bytes: u64,
    /// Bytes of the last line read (for give_back_last).
    last_bytes: u64,
    given_back: bool,
    max_line_bytes: u64,
}

/// What [`read_line_capped`] found.
enum Line {
    Eof,
    /// A line (in the buffer) of this many bytes, newline included.
    Kept(u64),
    /// A line longer than the cap, consumed but not kept: its bytes, newline included, and
    /// without it.
    TooLong {
        consumed: u64,
        length: u64,
    },
}

/// Reads one line into `buf` (newline included), keeping at most `max` bytes of it: past that
/// the rest is read and dropped up to the newline, so memory stays bounded by `max` whatever
/// the input holds.
fn read_line_capped(r: &mut dyn BufRead, buf: &mut Vec<u8>, max: u64) -> io::Result<Line> {
    buf.clear();
    let mut total: u64 = 0;
    let mut too_long = false;
    let mut newline = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        total += take as u64;
        if !too_long {
            // The newline does not count against the cap.
            let content = total - u64::from(done);
            if content > max {
                too_long = true;
                buf.clear();
                buf.shrink_to(1 << 16);
            } else {
                buf.extend_from_slice(&avail[..take]);
            }
        }
        r.consume(take);
        if done {
            newline = true;
            break;
        }
    }
    Ok(match (total, too_long) {
        (0, _) => Line::Eof,
        (n, true) => Line::TooLong {
            consumed: n,
            length: n - u64::from(newline),
        },
        (n, false) => Line::Kept(n),
    })
}

impl Lines {
    fn new(
        reader: Box<dyn BufRead>,
        name: String,
        source: String,
        identity: Option<FileIdentity>,
        max_line_bytes: u64,
    ) -> Lines {
        Lines {
            reader,
            name,
            source,
            identity,
            line: 0,
            bytes: 0,
            last_bytes: 0,
            given_back: false,
            max_line_bytes,
        }
    }
}

impl Input for Lines {
    fn next(&mut self, buf: &mut Vec<u8>, _room: usize) -> Result<Fetch, InputError> {
        loop {
            let got = read_line_capped(&mut *self.reader, buf, self.max_line_bytes)
                .map_err(|e| InputError(format!("{}: read error: {e}", self.name)))?;
            let n = match got {
                Line::Eof => return Ok(Fetch::End),
                Line::Kept(n) => n,
                Line::TooLong { consumed, length } => {
                    self.line += 1;
                    self.bytes += consumed;
                    self.last_bytes = consumed;
                    return Ok(Fetch::TooLong(length));
                }
            };
            self.line += 1;
            self.bytes += n;
            self.last_bytes = n;
            while buf.last().is_some_and(|b| b.is_ascii_whitespace()) {
                buf.pop();
            }
            if !buf.is_empty() {
                return Ok(Fetch::Message);
            }
        }
    }

    fn position(&self) -> String {
        format!("{} line {}", self.name, self.line)
    }

    fn give_back_last(&mut self) -> Result<(), InputError> {
        if !self.given_back {
            self.line -= 1;
            self.bytes -= self.last_bytes;
            self.given_back = true;
        }
        Ok(())
    }

    fn state(&self) -> InputState {
        InputState {
            source: self.source.clone(),
            lines: self.line,
            bytes: self.bytes,
            file_dev: self.identity.map_or(0, |i| i.dev),
            file_ino: self.identity.map_or(0, |i| i.ino),
            file_birth_ns: self.identity.map_or(0, |i| i.birth_ns),
            ..InputState::default()
        }
    }

    fn committed(&mut self) -> Result<(), InputError> {
        Ok(())
    }
}

/// Reliable fetch from a Redis list (see the module documentation).
struct RedisInput {
    cfg: RedisConfig,
    con: RespConnection,
    consumer: String,
    /// The generation being filled (the last committed one + 1).
    generation: u64,
    /// Messages moved into the processing list but not yet handed out, oldest first.
    ready: VecDeque<Vec<u8>>,
    /// The last message handed out (for give_back_last).
    last: Option<Vec<u8>>,
    taken: u64,
    lease_ttl: Duration,
    lease_refreshed: Instant,
    orphans_checked: Instant,
}

/// The lease's time to live (NETPIPE_RECORD_LEASE_MS, default 30 s, at least 300 ms).
fn lease_ttl() -> Duration {
    let ms = std::env::var("NETPIPE_RECORD_LEASE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(30_000)
        .max(300);
    Duration::from_millis(ms)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Moves a dead owner's processing list back to the queue (ARGV[1] = "requeue") or deletes
/// it ("drop"), only if the lease KEYS[1] is still absent; returns the messages concerned, or
/// -1 when the lease exists. KEYS: lease, list, queue.
const RECOVER_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if ARGV[1] == 'drop' then
  local n = redis.call('LLEN', KEYS[2])
  redis.call('DEL', KEYS[2])
  return n
end
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do n = n + 1 end
return n
";

impl RedisInput {
    fn open(cfg: RedisConfig, resumed: &InputState) -> Result<RedisInput, StartError> {
        let con = crate::broker::redis::connect(&cfg.endpoint)?;
        let source = cfg.describe();
        let (consumer, committed) = if resumed.source == source && !resumed.consumer.is_empty() {
            (resumed.consumer.clone(), resumed.generation)
        } else {
            if !resumed.consumer.is_empty() {
                super::log(format_args!(
                    "the state was written for input {} (consumer {}); its processing lists \
                     {}.netpipe-processing.{}.* are not taken up by this input",
                    resumed.source, resumed.consumer, cfg.queue, resumed.consumer
                ));
            }
            (uuid::Uuid::new_v4().simple().to_string(), 0)
        };
        super::log(format_args!(
            "{source}: consuming {} through processing lists {}.netpipe-processing.{consumer}.* \
             (start again with the same OUTPUT_CSV to take them up after a crash)",
            cfg.queue, cfg.queue
        ));
        let mut input = RedisInput {
            cfg,
            con,
            consumer,
            generation: committed + 1,
            ready: VecDeque::new(),
            last: None,
            taken: 0,
            lease_ttl: lease_ttl(),
            lease_refreshed: Instant::now(),
            orphans_checked: Instant::now(),
        };
        let fail = |e: RedisError| {
            StartError::new(
                crate::exit::BROKER_UNREACHABLE,
                format!("{}: recovery failed: {e}", input_source(&source)),
            )
        };
        // The lease first: from here on no other recorder takes this consumer's lists.
        let mut pipe = resp::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(input.lease_key(&input.consumer))
            .arg(std::process::id())
            .arg("PX")
            .arg(input.lease_ttl.as_millis() as u64)
            .ignore()
            .cmd("HSET")
            .arg(input.owner_key(&input.consumer))
            .arg("host")
            .arg(host_name())
            .arg("committed")
            .arg(committed)
            .ignore()
            // Written by earlier versions: a path no recorder reads any more.
            .cmd("HDEL")
            .arg(input.owner_key(&input.consumer))
            .arg("state")
            .ignore();
        pipe.query::<()>(&mut input.con).map_err(fail)?;
        input.lease_refreshed = Instant::now();
        if committed > 0 {
            // Already in the CSV: only the list is left to drop.
            resp::cmd("DEL")
                .arg(input.list(committed))
                .query::<i64>(&mut input.con)
                .map_err(fail)?;
        }
        // Taken by the crashed run but not committed: first in line now. LRANGE lists them
        // newest first (LMOVE pushes on the left).
        let left: Vec<Vec<u8>> = resp::cmd("LRANGE")
            .arg(input.list(input.generation))
            .arg(0)
            .arg(-1)
            .query(&mut input.con)
            .map_err(fail)?;
        input.ready.extend(left.into_iter().rev());
        input.recover_orphans().map_err(fail)?;
        Ok(input)
    }

    fn lease_key(&self, consumer: &str) -> String {
        format!("{}.netpipe-lease.{consumer}", self.cfg.queue)
    }

    fn owner_key(&self, consumer: &str) -> String {
        format!("{}.netpipe-owner.{consumer}", self.cfg.queue)
    }

    /// Extends the lease; an error if it had expired (another recorder may have taken this
    /// recorder's messages back to the queue).
    fn refresh_lease(&mut self) -> Result<(), InputError> {
        let extended: i64 = resp::cmd("PEXPIRE")
            .arg(self.lease_key(&self.consumer))
            .arg(self.lease_ttl.as_millis() as u64)
            .query(&mut self.con)
            .map_err(|e| InputError(format!("{}: lease: {e}", self.cfg.describe())))?;
        if extended == 0 {
            return Err(InputError(format!(
                "{}: this recorder's lease {} expired (stalled longer than {} ms): its \
                 messages not yet saved may have gone back to the queue, so it stops without \
                 saving them",
                self.cfg.describe(),
                self.lease_key(&self.consumer),
                self.lease_ttl.as_millis()
            )));
        }
        self.lease_refreshed = Instant::now();
        Ok(())
    }

    /// Takes back the processing lists of recorders whose lease expired (see the module
    /// documentation). Returns the messages put back on the queue.
    fn recover_orphans(&mut self) -> Result<u64, RedisError> {
        self.orphans_checked = Instant::now();
        let prefix = format!("{}.netpipe-processing.", self.cfg.queue);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = resp::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", redis_glob_escape(&prefix)))
                .arg("COUNT")
                .arg(1000)
                .query(&mut self.con)?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        // consumer -> generations
        let mut by_owner: HashMap<String, Vec<u64>> = HashMap::new();
        for k in &keys {
            let Some(rest) = k.strip_prefix(&prefix) else {
                continue;
            };
            let Some((consumer, generation)) = rest.rsplit_once('.') else {
                continue;
            };
            let Ok(generation) = generation.parse::<u64>() else {
                continue;
            };
            if consumer != self.consumer {
                by_owner
                    .entry(consumer.to_string())
                    .or_default()
                    .push(generation);
            }
        }
        let mut requeued_total = 0;
        for (owner, mut generations) in by_owner {
            let lease = self.lease_key(&owner);
            let alive: bool = resp::cmd("EXISTS").arg(&lease).query(&mut self.con)?;
            if alive {
                continue;
            }
            let committed = self.owner_committed(&owner)?;
            // Newest first: each list goes to the consumer end, so the oldest ends up first.
            generations.sort_unstable_by(|a, b| b.cmp(a));
            let mut all_done = true;
            for generation in generations {
                let list = format!("{prefix}{owner}.{generation}");
                let done = committed.is_some_and(|c| generation <= c);
                let n: i64 = resp::cmd("EVAL")
                    .arg(RECOVER_SCRIPT)
                    .arg(3)
                    .arg(&lease)
                    .arg(&list)
                    .arg(&self.cfg.queue)
                    .arg(if done { "drop" } else { "requeue" })
                    .query(&mut self.con)?;
                if n < 0 {
                    all_done = false;
                    break;
                }
                if n == 0 {
                    continue;
                }
                if done {
                    super::log(format_args!(
                        "{}: dropped {list} ({n} message(s) its recorder had committed before \
                         it stopped without removing the list)",
                        self.cfg.describe()
                    ));
                } else {
                    requeued_total += n as u64;
                    super::log(format_args!(
                        "{}: put {n} message(s) of {list} back on {} (its recorder's lease \
                         expired){}",
                        self.cfg.describe(),
                        self.cfg.queue,
                        if committed.is_none() {
                            "; its owner record holds no commit mark, so if that recorder had \
                             committed them just before it stopped they are recorded twice"
                        } else {
                            ""
                        }
                    ));
                }
            }
            if all_done {
                let _: i64 = resp::cmd("DEL")
                    .arg(self.owner_key(&owner))
                    .query(&mut self.con)?;
            }
        }
        Ok(requeued_total)
    }

    /// The last generation a lease-less owner committed, from the `committed` field of its
    /// owner record; None when there is none or it is not a number. Only that one field is
    /// read (a planted record could be large), and it is a number, never a path.
    fn owner_committed(&mut self, owner: &str) -> Result<Option<u64>, RedisError> {
        let committed: Option<Vec<u8>> = resp::cmd("HGET")
            .arg(self.owner_key(owner))
            .arg("committed")
            .query(&mut self.con)?;
        Ok(committed
            .filter(|c| c.len() <= 20)
            .and_then(|c| std::str::from_utf8(&c).ok()?.parse::<u64>().ok())
            .filter(|&c| c > 0))
    }

    /// Lease refresh and the periodic look for dead recorders' lists.
    fn housekeeping(&mut self) -> Result<(), InputError> {
        if self.lease_refreshed.elapsed() >= self.lease_ttl / 3 {
            self.refresh_lease()?;
        }
        if self.orphans_checked.elapsed() >= self.lease_ttl {
            self.recover_orphans().map_err(|e| {
                InputError(format!(
                    "{}: taking up dead recorders' lists: {e}",
                    self.cfg.describe()
                ))
            })?;
        }
        Ok(())
    }

    fn list(&self, generation: u64) -> String {
        format!(
            "{}.netpipe-processing.{}.{generation}",
            self.cfg.queue, self.consumer
        )
    }

    /// Moves up to `n` messages into the processing list in one round trip.
    fn fetch(&mut self, n: usize) -> Result<(), RedisError> {
        let list = self.list(self.generation);
        let mut pipe = resp::pipe();
        for _ in 0..n {
            pipe.cmd("LMOVE")
                .arg(&self.cfg.queue)
                .arg(&list)
                .arg("RIGHT")
                .arg("LEFT");
        }
        let got: Vec<Option<Vec<u8>>> = pipe.query(&mut self.con)?;
        self.ready.extend(got.into_iter().flatten());
        if self.ready.is_empty() {
            let got: Option<Vec<u8>> = resp::cmd("BLMOVE")
                .arg(&self.cfg.queue)
                .arg(&list)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(IDLE_WAIT.as_secs_f64())
                .query(&mut self.con)?;
            self.ready.extend(got);
        }
        Ok(())
    }
}

impl RedisInput {
    /// `last` (if any) and every message fetched but not handed out go back to the consumer
    /// end of the queue (RPUSH, the oldest last so it is taken first) and leave the
    /// processing list, where they are the newest (leftmost). One transaction.
    fn give_back(&mut self, last: Option<Vec<u8>>) -> Result<(), InputError> {
        let mut back: Vec<Vec<u8>> = last.into_iter().collect();
        back.extend(self.ready.drain(..));
        if back.is_empty() {
            return Ok(());
        }
        let list = self.list(self.generation);
        let mut pipe = resp::pipe();
        pipe.atomic();
        pipe.cmd("RPUSH").arg(&self.cfg.queue);
        for m in back.iter().rev() {
            pipe.arg(m);
        }
        pipe.cmd("LTRIM").arg(&list).arg(back.len()).arg(-1);
        pipe.query::<()>(&mut self.con)
            .map_err(|e| InputError(format!("{}: give back: {e}", self.cfg.describe())))
    }
}

fn input_source(s: &str) -> String {
    format!("input {s}")
}

/// Messages moved per round trip.
const REDIS_FETCH: usize = 256;

impl Input for RedisInput {
    fn next(&mut self, buf: &mut Vec<u8>, room: usize) -> Result<Fetch, InputError> {
        self.housekeeping()?;
        if self.ready.is_empty() {
            self.fetch(room.clamp(1, REDIS_FETCH)).map_err(|e| {
                InputError(format!(
                    "{}: {e} (messages taken and not saved stay in {} and are taken up at \
                     the next start with this OUTPUT_CSV)",
                    self.cfg.describe(),
                    self.list(self.generation)
                ))
            })?;
        }
        match self.ready.pop_front() {
            Some(m) => {
                buf.clear();
                buf.extend_from_slice(&m);
                self.last = Some(m);
                self.taken += 1;
                Ok(Fetch::Message)
            }
            None => Ok(Fetch::Idle),
        }
    }

    fn position(&self) -> String {
        format!(
            "{} queue {} message {}",
            self.cfg.describe(),
            self.cfg.queue,
            self.taken
        )
    }

    fn give_back_last(&mut self) -> Result<(), InputError> {
        let last = self.last.take();
        if last.is_some() {
            self.taken -= 1;
        }
        self.give_back(last)
    }

    fn release_unused(&mut self) -> Result<(), InputError> {
        self.give_back(None)
    }

    fn state(&self) -> InputState {
        InputState {
            source: self.cfg.describe(),
            consumer: self.consumer.clone(),
            generation: self.generation,
            ..InputState::default()
        }
    }

    fn before_commit(&mut self) -> Result<(), InputError> {
        self.refresh_lease()
    }

    fn commit_mark(&mut self) -> Result<(), InputError> {
        resp::cmd("HSET")
            .arg(self.owner_key(&self.consumer))
            .arg("committed")
            .arg(self.generation)
            .query::<i64>(&mut self.con)
            .map(drop)
            .map_err(|e| InputError(format!("{}: commit mark: {e}", self.cfg.describe())))
    }

    fn committed(&mut self) -> Result<(), InputError> {
        // Everything in the list is in the committed snapshot: `next` never takes more than
        // the snapshot's room and release_unused ran before the commit.
        let list = self.list(self.generation);
        self.generation += 1;
        self.last = None;
        resp::cmd("DEL")
            .arg(&list)
            .query::<i64>(&mut self.con)
            .map(drop)
            .map_err(|e| InputError(format!("{}: acknowledge: {e}", self.cfg.describe())))
    }
}

impl Drop for RedisInput {
    /// A clean stop hands the lease back at once; the owner record stays while a processing
    /// list is left, so that another recorder can still tell what of it was committed.
    fn drop(&mut self) {
        let list = self.list(self.generation);
        let left: Result<bool, _> = resp::cmd("EXISTS").arg(&list).query(&mut self.con);
        let mut pipe = resp::pipe();
        pipe.cmd("DEL").arg(self.lease_key(&self.consumer)).ignore();
        if matches!(left, Ok(false)) {
            pipe.cmd("DEL").arg(self.owner_key(&self.consumer)).ignore();
        }
        let _ = pipe.query::<()>(&mut self.con);
    }
}

/// `s` with Redis glob characters escaped.
fn redis_glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(input: &[u8], max: u64) -> Vec<String> {
        let mut r = BufReader::with_capacity(7, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line_capped(&mut r, &mut buf, max).unwrap() {
                Line::Eof => return out,
                Line::Kept(n) => {
                    assert_eq!(n as usize, buf.len());
                    out.push(String::from_utf8(buf.clone()).unwrap());
                }
                Line::TooLong { consumed, length } => {
                    out.push(format!("too long {consumed} {length}"))
                }
            }
        }
    }

    #[test]
    fn lines_are_capped_at_max_bytes_without_their_newline() {
        // Exactly the cap is kept; one byte more is skipped to its newline; the next line
        // is read whole; a last line without a newline counts too.
        let got = capped(b"12345678\n123456789\nabc\n1234567890", 8);
        assert_eq!(
            got,
            ["12345678\n", "too long 10 9", "abc\n", "too long 10 10"]
        );
        assert_eq!(capped(b"", 8), Vec::<String>::new());
    }
}
