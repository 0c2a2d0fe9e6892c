//! One packet message into one CSV row, the way the original recorder (RecordPacketsToCSV)
//! built its rows with pandas `json_normalize` (REFERENCE section 4):
//!
//! - each layer under `data` is flattened on its own, nested object keys joined with `.`
//!   (`tcp` → `fields_options` → `MSS` is `tcp_fields_options.MSS`), and its columns prefixed:
//!   `ether` `eth_`, `ip` `ip_`, `ipv6` `ipv6_`, `tcp` `tcp_`, `udp` `udp_`, `dns` `dns_`,
//!   `icmp` `icmp_`, `arp` `arp_`, `raw` `raw_`, `padding` `pad_`; any other layer `<key>_`
//!   (the original logged those as unsupported and left them out);
//! - an empty nested object makes no column (json_normalize drops it); `null` makes a column
//!   with an empty cell;
//! - values as pandas writes them: integers as digits, floats as Python's `repr`, booleans
//!   `True`/`False`, strings as they are, lists as compact JSON text in one cell (pandas would
//!   print Python's `repr` of the list; JSON is what REFERENCE asks for and what other tools
//!   can read back).
//!
//! The walk is a serde visitor over the message text: no value tree is built, a cell's text
//! goes straight into the row buffer. Only lists go through `serde_json::Value`.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// The layer → column prefix table of the original recorder.
pub(crate) fn layer_prefix(layer: &str) -> Cow<'static, str> {
    Cow::Borrowed(match layer {
        "ether" => "eth_",
        "ip" => "ip_",
        "ipv6" => "ipv6_",
        "tcp" => "tcp_",
        "udp" => "udp_",
        "dns" => "dns_",
        "icmp" => "icmp_",
        "arp" => "arp_",
        "raw" => "raw_",
        "padding" => "pad_",
        other => return Cow::Owned(format!("{other}_")),
    })
}

/// Columns the original recorder always wrote, whatever the traffic: it seeded each layer's
/// key table with `<prefix>id` (spelling IPv6's `ipvsix_id`). They are empty unless a layer
/// has an `id` field of its own (ip, dns, icmp echo).
pub const ALWAYS_COLUMNS: [&str; 10] = [
    "eth_id",
    "ip_id",
    "ipvsix_id",
    "icmp_id",
    "arp_id",
    "tcp_id",
    "udp_id",
    "dns_id",
    "raw_id",
    "pad_id",
];

/// The error of a packet message without any field (a frame nothing could be decoded from):
/// not bad input, but no row either (the original recorder made none).
pub const EMPTY_PACKET: &str = "\"data\" has no layer with a field (empty packet)";

/// The start of the error of a message that would add columns past the cap (`--max-columns`).
pub const TOO_MANY_COLUMNS: &str = "would add columns past --max-columns";

/// What kind of JSON value a cell came from (the AntiNex client converts numbers only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// `null`: an empty cell.
    Null,
    /// A JSON number, written as pandas writes it.
    Number,
    /// `true`/`false`, written `True`/`False`.
    Bool,
    /// A string, written as it is.
    Text,
    /// A list, written as compact JSON text.
    List,
}

/// A multiply-xor hash for column names (short, trusted-enough keys: a hash flood could only
/// slow the recorder down, and the column table is bounded by what the messages hold).
#[derive(Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type NameMap = HashMap<String, u32, std::hash::BuildHasherDefault<NameHasher>>;

/// Every column name seen, numbered in order of first appearance.
#[derive(Default)]
pub struct Columns {
    names: Vec<String>,
    index: NameMap,
    /// The column of the k-th cell of the last message: consecutive messages mostly share
    /// their shape, and one string compare is cheaper than a hash lookup.
    hints: Vec<u32>,
    /// At most this many columns (0: no limit); a name past it gets [`Columns::OVER`].
    limit: usize,
    /// Names refused since the last [`Columns::mark`].
    refused: usize,
}

impl Columns {
    /// The id of the `ordinal`-th cell's column `name` (the hint makes repeats cheap).
    fn id_at(&mut self, ordinal: usize, name: &str) -> u32 {
        if let Some(&h) = self.hints.get(ordinal) {
            if self.names[h as usize] == name {
                return h;
            }
        }
        let id = self.id(name);
        if id == Self::OVER {
            return id;
        }
        if ordinal < self.hints.len() {
            self.hints[ordinal] = id;
        } else if ordinal == self.hints.len() {
            self.hints.push(id);
        }
        id
    }

    /// The id given to a column refused by the limit (its cells are never written: the
    /// message is rejected).
    pub const OVER: u32 = u32::MAX;

    /// Caps the number of columns (0: no cap).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Where a message starts: [`Columns::rollback`] forgets what it added.
    fn mark(&mut self) -> usize {
        self.refused = 0;
        self.names.len()
    }

    /// Forgets the columns added since `mark` (a rejected message adds none).
    fn rollback(&mut self, mark: usize) {
        if self.names.len() > mark {
            for name in self.names.drain(mark..) {
                self.index.remove(&name);
            }
            // A hint may name a forgotten column.
            self.hints.clear();
        }
    }

    /// The id of column `name`, numbered next if new; [`Columns::OVER`] when the cap refuses
    /// a new name.
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        if self.limit > 0 && self.names.len() >= self.limit {
            self.refused += 1;
            return Self::OVER;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), id);
        id
    }

    /// The id of column `name`, if it is known (nothing is added).
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The name of column `id`; empty for an id never given out.
    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    /// How many columns are known.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no column is known yet.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Column ids ordered by name: the CSV's order after `idx`.
    pub fn sorted(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.names.len() as u32).collect();
        ids.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        ids
    }
}

/// One cell of a pending row: column, kind, and its text in [`Rows::text`].
#[derive(Clone, Copy, Debug)]
pub struct Cell {
    /// The column's id in [`Columns`].
    pub column: u32,
    /// What JSON value the text came from.
    pub kind: CellKind,
    /// Where the text starts in [`Rows::text`] (bytes).
    pub start: u32,
    /// Where the text ends in [`Rows::text`] (bytes, exclusive).
    pub end: u32,
}

/// Rows flattened since the last snapshot: cell texts (unescaped) in one buffer.
#[derive(Default)]
pub struct Rows {
    /// Every cell's text, back to back, not yet CSV-quoted.
    pub text: Vec<u8>,
    /// Every row's cells, row after row.
    pub cells: Vec<Cell>,
    /// End index in `cells` of each row.
    pub row_ends: Vec<usize>,
}

impl Rows {
    /// How many rows are pending.
    pub fn len(&self) -> usize {
        self.row_ends.len()
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.row_ends.is_empty()
    }

    /// Forgets every row, keeping the buffers' memory.
    pub fn clear(&mut self) {
        self.text.clear();
        self.cells.clear();
        self.row_ends.clear();
    }

    /// Gives back memory past about `bytes` (after a snapshot of unusually large rows).
    pub fn shrink_to(&mut self, bytes: usize) {
        self.text.shrink_to(bytes);
        self.cells.shrink_to(bytes / std::mem::size_of::<Cell>());
        self.row_ends
            .shrink_to(bytes / std::mem::size_of::<usize>());
    }

    /// The cells of row `i`.
    pub fn row(&self, i: usize) -> &[Cell] {
        let start = if i == 0 { 0 } else { self.row_ends[i - 1] };
        &self.cells[start..self.row_ends[i]]
    }

    /// The text of cell `c` (a cell of these rows).
    pub fn cell_text(&self, c: &Cell) -> &[u8] {
        &self.text[c.start as usize..c.end as usize]
    }
}

/// What the walk learnt about the message besides its cells.
#[derive(Default, Debug, Clone, Copy)]
pub struct MessageInfo {
    /// The message has an `id` key at the top (else the archive entry gets a new UUID).
    pub has_id: bool,
    /// The message has a `received` key at the top (else the archive entry gets one).
    pub has_received: bool,
}

/// Flattens one message into a new row of `rows`. On error the row is not added (nothing of
/// it stays in `rows`) and the message is to be rejected.
pub fn flatten_message(
    json: &[u8],
    columns: &mut Columns,
    rows: &mut Rows,
) -> Result<MessageInfo, String> {
    let text_mark = rows.text.len();
    let cell_mark = rows.cells.len();
    let column_mark = columns.mark();
    let mut walker = Walker {
        columns,
        rows,
        path: String::with_capacity(64),
        info: MessageInfo::default(),
        saw_data: false,
    };
    // One UTF-8 check of the whole message is cheaper than serde_json's check of each string
    // (profiled: ~9 % of the file path); invalid UTF-8 anywhere is a rejected message either way.
    let result = match std::str::from_utf8(json) {
        Err(e) => Err(de::Error::custom(format_args!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        ))),
        Ok(text) => {
            let mut de = serde_json::Deserializer::from_str(text);
            (&mut de)
                .deserialize_map(MessageVisitor(&mut walker))
                .and_then(|()| de.end())
        }
    };
    let saw_data = walker.saw_data;
    let info = walker.info;
    let refused = columns.refused;
    let outcome = match result {
        Err(e) => Err(format!("not a JSON packet message: {e}")),
        Ok(()) if refused > 0 => Err(format!(
            "{TOO_MANY_COLUMNS} ({} new column(s) refused; the CSV keeps at most {} columns \
             besides idx)",
            refused,
            columns.limit.saturating_sub(ALWAYS_COLUMNS.len())
        )),
        Ok(()) if !saw_data => Err("no \"data\" key (not a packet message)".to_string()),
        Ok(()) if rows.cells.len() == cell_mark => Err(EMPTY_PACKET.to_string()),
        Ok(()) => Ok(info),
    };
    match outcome {
        Ok(info) => {
            rows.row_ends.push(rows.cells.len());
            Ok(info)
        }
        Err(e) => {
            rows.text.truncate(text_mark);
            rows.cells.truncate(cell_mark);
            columns.rollback(column_mark);
            Err(e)
        }
    }
}

struct Walker<'a> {
    columns: &'a mut Columns,
    rows: &'a mut Rows,
    /// The column name being built: prefix, then keys joined with `.`.
    path: String,
    info: MessageInfo,
    saw_data: bool,
}

impl Walker<'_> {
    fn cell(&mut self, kind: CellKind, text: &[u8]) {
        let row_start = self.rows.row_ends.last().copied().unwrap_or(0);
        let ordinal = self.rows.cells.len() - row_start;
        let column = self.columns.id_at(ordinal, &self.path);
        let start = self.rows.text.len() as u32;
        self.rows.text.extend_from_slice(text);
        let end = self.rows.text.len() as u32;
        // A repeated key (invalid but parseable JSON) makes two cells of one column; the
        // writer keeps the last, as Python's json does.
        self.rows.cells.push(Cell {
            column,
            kind,
            start,
            end,
        });
    }
}

/// A map key that borrows from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

struct MessageVisitor<'w, 'a>(&'w mut Walker<'a>);

impl<'de> Visitor<'de> for MessageVisitor<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(k)) = map.next_key::<Key>()? {
            match k.as_ref() {
                "data" => {
                    if self.0.saw_data {
                        return Err(de::Error::custom("two \"data\" keys"));
                    }
                    self.0.saw_data = true;
                    map.next_value_seed(DataSeed(&mut *self.0))?;
                }
                "id" => {
                    self.0.info.has_id = true;
                    map.next_value::<IgnoredAny>()?;
                }
                "received" => {
                    self.0.info.has_received = true;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct DataSeed<'w, 'a>(&'w mut Walker<'a>);

impl<'de> DeserializeSeed<'de> for DataSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"data\" as an object of layers")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(layer)) = map.next_key::<Key>()? {
            self.0.path.clear();
            self.0.path.push_str(&layer_prefix(&layer));
            map.next_value_seed(LayerSeed {
                w: &mut *self.0,
                layer: &layer,
            })?;
        }
        Ok(())
    }
}

struct LayerSeed<'w, 'a, 'l> {
    w: &'w mut Walker<'a>,
    layer: &'l str,
}

impl<'de> DeserializeSeed<'de> for LayerSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LayerSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "layer \"{}\" as an object of fields", self.layer)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        walk_object(self.w, map, true)
    }
}

/// The fields of an object; `top` when directly under the layer (no `.` before the key).
fn walk_object<'de, A: MapAccess<'de>>(
    w: &mut Walker<'_>,
    mut map: A,
    top: bool,
) -> Result<(), A::Error> {
    let mark = w.path.len();
    while let Some(Key(k)) = map.next_key::<Key>()? {
        if !top {
            w.path.push('.');
        }
        w.path.push_str(&k);
        map.next_value_seed(FieldSeed(&mut *w))?;
        w.path.truncate(mark);
    }
    Ok(())
}

struct FieldSeed<'w, 'a>(&'w mut Walker<'a>);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.cell(CellKind::Null, b"");
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0
            .cell(CellKind::Bool, if v { b"True" } else { b"False" });
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0
            .cell(CellKind::Number, itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0
            .cell(CellKind::Number, itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.cell(CellKind::Number, python_float(v).as_bytes());
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.cell(CellKind::Text, v.as_bytes());
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        walk_object(self.0, map, false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            items.push(v);
        }
        let text = serde_json::to_vec(&items).map_err(de::Error::custom)?;
        self.0.cell(CellKind::List, &text);
        Ok(())
    }
}

/// A float as Python's `repr` prints it (what pandas writes): shortest round-trip digits,
/// scientific notation below 1e-4 and from 1e16 on, `.0` on whole numbers.
pub(crate) fn python_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust: "1e21", "1.5e-7"; Python: "1e+21", "1.5e-07".
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(json: &str) -> Result<Vec<(String, String)>, String> {
        let mut cols = Columns::default();
        let mut rows = Rows::default();
        flatten_message(json.as_bytes(), &mut cols, &mut rows)?;
        Ok(rows
            .row(0)
            .iter()
            .map(|c| {
                (
                    cols.name(c.column).to_string(),
                    String::from_utf8_lossy(rows.cell_text(c)).into_owned(),
                )
            })
            .collect())
    }

    #[test]
    fn column_cap_rejects_the_message_and_forgets_its_new_columns() {
        let mut cols = Columns::default();
        cols.set_limit(3);
        let mut rows = Rows::default();
        flatten_message(br#"{"data":{"ip":{"a":1,"b":2}}}"#, &mut cols, &mut rows).unwrap();
        // c fits, d does not: the whole message goes, c with it.
        let e =
            flatten_message(br#"{"data":{"ip":{"c":1,"d":2}}}"#, &mut cols, &mut rows).unwrap_err();
        assert!(e.starts_with(TOO_MANY_COLUMNS), "{e}");
        assert_eq!((cols.len(), rows.len()), (2, 1));
        assert_eq!(cols.get("ip_c"), None);
        // Known columns still take rows, and one more new one fits.
        flatten_message(br#"{"data":{"ip":{"b":5,"e":6}}}"#, &mut cols, &mut rows).unwrap();
        assert_eq!((cols.len(), rows.len()), (3, 2));
        // A message rejected for bad JSON adds no column either.
        let mut cols = Columns::default();
        assert!(flatten_message(br#"{"data":{"ip":{"z":1},"#, &mut cols, &mut rows).is_err());
        assert!(cols.is_empty());
    }

    #[test]
    fn prefixes_nesting_and_values() {
        let got = flat(
            r#"{"data":{"ether":{"type":2048},"tcp":{"fields_options":{"MSS":1460,"NOP":null,
            "SAckOK":"","SAck":[1,2]},"x":{}},"padding":{"load":"00"},"dot1q":{"vlan":5},
            "raw":{"f":1.5,"b":true}},"created":"x"}"#,
        )
        .unwrap();
        let want = [
            ("eth_type", "2048"),
            ("tcp_fields_options.MSS", "1460"),
            ("tcp_fields_options.NOP", ""),
            ("tcp_fields_options.SAckOK", ""),
            ("tcp_fields_options.SAck", "[1,2]"),
            ("pad_load", "00"),
            ("dot1q_vlan", "5"),
            ("raw_f", "1.5"),
            ("raw_b", "True"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn tunnelled_layers_keep_outer_columns_and_suffix_inner_ones() {
        // A VXLAN packet as `read` prints it (tests/golden/tunnels.pcap.jsonl, first line):
        // the outer layers keep the original prefixes, the inner ones get `<key>_2_`, so no
        // outer cell is overwritten and the names do not depend on the traffic mix.
        let golden = include_str!("../../tests/golden/tunnels.pcap.jsonl");
        let line = golden.lines().next().unwrap();
        let got = flat(line).unwrap();
        let get = |name: &str| {
            let hits: Vec<_> = got.iter().filter(|(k, _)| k == name).collect();
            assert_eq!(hits.len(), 1, "{name} in {got:?}");
            hits[0].1.clone()
        };
        assert_eq!(get("ip_src"), "203.0.113.11");
        assert_eq!(get("ip_2_src"), "192.0.2.101");
        assert_eq!(get("eth_dst"), "00:00:5e:00:53:b2");
        assert_eq!(get("ether_2_dst"), "00:00:5e:00:53:c2");
        assert_eq!(get("udp_dport"), "4789");
        assert_eq!(get("vxlan_vni"), "5001");
        assert_eq!(get("tcp_dport"), "80");
        let mut names: Vec<_> = got.iter().map(|(k, _)| k.as_str()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a column was written twice");
    }

    #[test]
    fn bad_messages_leave_nothing() {
        let mut cols = Columns::default();
        let mut rows = Rows::default();
        for bad in [
            "",
            "{",
            "[1]",
            r#"{"created":"x"}"#,
            r#"{"data":{}}"#,
            r#"{"data":5}"#,
            r#"{"data":{"ip":3}}"#,
            r#"{"data":{"ip":{"a":1}}} trailing"#,
            r#"{"data":{"ip":{"a":1},"tcp":{"b":"#,
        ] {
            assert!(
                flatten_message(bad.as_bytes(), &mut cols, &mut rows).is_err(),
                "{bad}"
            );
            assert!(rows.is_empty() && rows.cells.is_empty() && rows.text.is_empty());
        }
    }

    #[test]
    fn floats_like_python() {
        assert_eq!(python_float(1.5), "1.5");
        assert_eq!(python_float(2.0), "2.0");
        assert_eq!(python_float(1e21), "1e+21");
        assert_eq!(python_float(1.5e-7), "1.5e-07");
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(0.0), "0.0");
    }
}
