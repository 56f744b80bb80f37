//! A shard's record storage.
//!
//! A record is one link, packed:
//!
//! ```text
//! [code len][code][prefix len][suffix len][zigzag id][provider << 2 | routed << 1 | disabled][prefix][suffix]
//! ```
//!
//! A routed link (one with targeting) keeps its compiled routes beside the
//! arena, in its shard's side table by link id (`routed` says to look).
//!
//! The numbers are ASCII varints (6 bits a byte, 0x40 meaning "more"), so a
//! chunk is valid UTF-8 at all times: a heap chunk, a `String`, gives the
//! template halves as `&str` in O(1); a mapped chunk (huge pages, plain
//! bytes, see [`Block`]) checks them, as no `unsafe` may assume it. The code
//! comes first, so a probe compares it after one length byte.
//!
//! Chunks are allocated once at their final capacity (4 KiB growing
//! fourfold to 256 KiB on the heap, then 2 MiB maps in huge pages) and
//! filled front to back, so growth never copies and the slack is at most
//! one chunk. Records never straddle chunks; a record over 8 KiB gets a
//! chunk of its own, which bounds the unused tail of a shared chunk.

use std::ops::Range;

use super::LinkRef;
use super::block::{Block, MAPPED_MIN};

/// A varint byte's payload bits; the 0x40 bit says another byte follows.
const VARINT_BITS: u32 = 6;
const VARINT_MORE: u8 = 0x40;
const VARINT_MASK: u8 = 0x3f;

/// Bytes `v` takes as an ASCII varint.
fn varint_len(v: u64) -> usize {
    let bits = (u64::BITS - v.leading_zeros()).max(1);
    bits.div_ceil(VARINT_BITS) as usize
}

/// Longest varint: 64 bits at 6 bits a byte.
const VARINT_MAX: usize = 11;

/// `v` as an ASCII varint (every byte below 0x80, so a record's header is
/// valid UTF-8): the bytes, and how many of them are used.
fn encode_varint(mut v: u64) -> ([u8; VARINT_MAX], usize) {
    let mut out = [0; VARINT_MAX];
    let mut n = 0;
    loop {
        let byte = (v as u8) & VARINT_MASK;
        v >>= VARINT_BITS;
        if v == 0 {
            out[n] = byte;
            return (out, n + 1);
        }
        out[n] = byte | VARINT_MORE;
        n += 1;
    }
}

/// Reads an ASCII varint at `*pos`, advancing it. Inline for the common
/// one-byte case (every length and flag of a typical link).
#[inline]
fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let byte = *bytes.get(*pos)?;
    *pos += 1;
    if byte & VARINT_MORE == 0 {
        return Some(u64::from(byte));
    }
    get_varint_rest(bytes, pos, byte)
}

/// The rest of a varint whose first byte, `first`, said more follow (the
/// id of all but the first 32 links).
#[inline]
fn get_varint_rest(bytes: &[u8], pos: &mut usize, first: u8) -> Option<u64> {
    let mut v = u64::from(first & VARINT_MASK);
    let mut shift = VARINT_BITS;
    loop {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & VARINT_MASK) << shift;
        if byte & VARINT_MORE == 0 {
            return Some(v);
        }
        shift += VARINT_BITS;
        if shift >= u64::BITS {
            return None;
        }
    }
}

#[inline]
fn get_len(bytes: &[u8], pos: &mut usize) -> Option<usize> {
    usize::try_from(get_varint(bytes, pos)?).ok()
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Where a record is: chunk number in the high 11 bits, offset of the
/// record's first byte in the chunk in the low [`OFFSET_BITS`].
pub(super) type Loc = u32;

/// Bits of a [`Loc`] that hold the offset in the chunk.
const OFFSET_BITS: u32 = 21;
/// Capacity of a full-size chunk: a huge page. Records start below it, so
/// their offset fits a [`Loc`].
pub(super) const CHUNK: usize = 1 << OFFSET_BITS;
/// Capacity of a shard's first chunk; each next one of the first
/// [`HEAP_CHUNKS`] is four times larger (4, 16, 64, 256 KiB, on the heap),
/// then every one is a [`CHUNK`] (in huge pages).
const FIRST_CHUNK: usize = 4 * 1024;
/// Shared chunks on the heap before the first full-size one.
const HEAP_CHUNKS: usize = 4;
/// Records larger than this get a chunk of their own, so the unused tail
/// of a shared chunk is at most this.
pub(super) const MAX_SHARED_RECORD: usize = 8 * 1024;
/// Chunks a shard can address.
const MAX_CHUNKS: usize = 1 << (u32::BITS - OFFSET_BITS);

/// The byte positions of a record's fields in its chunk.
#[derive(Debug)]
struct Layout {
    start: usize,
    prefix: Range<usize>,
    suffix: Range<usize>,
    id: i64,
    meta: u64,
}

impl Layout {
    #[inline]
    fn parse(bytes: &[u8], start: usize) -> Option<Layout> {
        let mut pos = start;
        let code_len = get_len(bytes, &mut pos)?;
        pos = pos.checked_add(code_len)?;
        let prefix_len = get_len(bytes, &mut pos)?;
        let suffix_len = get_len(bytes, &mut pos)?;
        let id = unzigzag(get_varint(bytes, &mut pos)?);
        let meta = get_varint(bytes, &mut pos)?;
        let prefix = pos..pos.checked_add(prefix_len)?;
        let suffix = prefix.end..prefix.end.checked_add(suffix_len)?;
        Some(Layout {
            start,
            prefix,
            suffix,
            id,
            meta,
        })
    }

    fn len(&self) -> usize {
        self.suffix.end - self.start
    }
}

/// A chunk, filled from the front: a `String` while small, then a block of
/// huge pages (see [`Block`]).
#[derive(Debug)]
enum Chunk {
    Heap(String),
    Mapped { block: Block, len: usize },
}

impl Chunk {
    fn new(capacity: usize) -> Chunk {
        if capacity >= MAPPED_MIN {
            let block = Block::zeroed(capacity);
            if block.is_mapped() {
                return Chunk::Mapped { block, len: 0 };
            }
        }
        Chunk::Heap(String::with_capacity(capacity))
    }

    /// The filled bytes.
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Heap(s) => s.as_bytes(),
            Chunk::Mapped { block, len } => &block.bytes()[..*len],
        }
    }

    /// The text at `range`. Records are written from `&str`s and ASCII
    /// headers, so this fails only on a bug; a heap chunk, a `String`,
    /// slices it in O(1), a mapped one, being plain bytes, checks it.
    #[inline]
    fn text(&self, range: Range<usize>) -> Option<&str> {
        match self {
            Chunk::Heap(s) => s.get(range),
            Chunk::Mapped { block, len } => {
                std::str::from_utf8(block.bytes()[..*len].get(range)?).ok()
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Chunk::Heap(s) => s.len(),
            Chunk::Mapped { len, .. } => *len,
        }
    }

    fn room(&self) -> usize {
        match self {
            Chunk::Heap(s) => s.capacity() - s.len(),
            Chunk::Mapped { block, len } => block.len() - len,
        }
    }

    /// Bytes of memory held.
    fn footprint(&self) -> usize {
        match self {
            Chunk::Heap(s) => s.capacity(),
            Chunk::Mapped { block, .. } => block.footprint(),
        }
    }

    /// Appends text that fits.
    fn push(&mut self, text: &str) {
        match self {
            Chunk::Heap(s) => s.push_str(text),
            Chunk::Mapped { block, len } => {
                block.bytes_mut()[*len..*len + text.len()].copy_from_slice(text.as_bytes());
                *len += text.len();
            }
        }
    }

    /// Appends `v` as an ASCII varint.
    fn push_varint(&mut self, v: u64) {
        let (bytes, n) = encode_varint(v);
        // ASCII, so always valid.
        if let Ok(text) = std::str::from_utf8(&bytes[..n]) {
            self.push(text);
        }
    }
}

/// A shard's record storage: chunks allocated at their final capacity and
/// filled front to back.
#[derive(Debug, Default)]
pub(super) struct Arena {
    chunks: Vec<Chunk>,
    /// Record bytes appended, live or dead.
    pub(super) used: usize,
    /// The shared chunk being filled. Chunks of single large records come
    /// and go beside it without closing it.
    open: Option<usize>,
    /// Shared chunks allocated so far (they grow up to [`CHUNK`]).
    shared: usize,
}

impl Arena {
    /// Bytes of memory held: every chunk's and the chunk list.
    pub(super) fn memory_bytes(&self) -> usize {
        self.chunks.iter().map(Chunk::footprint).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }

    /// Bytes of chunks that are in maps (see [`Block`]).
    pub(super) fn mapped_bytes(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| matches!(c, Chunk::Mapped { .. }))
            .map(Chunk::footprint)
            .sum()
    }

    /// The chunk and offset of a location.
    #[inline]
    fn locate(&self, loc: Loc) -> Option<(&Chunk, usize)> {
        let chunk = self.chunks.get((loc >> OFFSET_BITS) as usize)?;
        Some((chunk, (loc & ((1 << OFFSET_BITS) - 1)) as usize))
    }

    /// The code of the record at `loc` (a probe's comparison).
    #[inline]
    pub(super) fn code(&self, loc: Loc) -> Option<&[u8]> {
        let (chunk, mut pos) = self.locate(loc)?;
        let bytes = chunk.bytes();
        let len = get_len(bytes, &mut pos)?;
        bytes.get(pos..pos.checked_add(len)?)
    }

    /// The link in the record at `loc`.
    #[inline]
    pub(super) fn link(&self, loc: Loc) -> Option<LinkRef<'_>> {
        let (chunk, start) = self.locate(loc)?;
        let layout = Layout::parse(chunk.bytes(), start)?;
        Some(LinkRef {
            id: layout.id,
            provider: u16::try_from(layout.meta >> 2).ok()?,
            disabled: layout.meta & 1 == 1,
            routed: layout.meta & 2 == 2,
            routes: None,
            prefix: chunk.text(layout.prefix)?,
            suffix: chunk.text(layout.suffix)?,
        })
    }

    /// The whole record at `loc`, as stored.
    pub(super) fn record(&self, loc: Loc) -> Option<&str> {
        let (chunk, start) = self.locate(loc)?;
        let layout = Layout::parse(chunk.bytes(), start)?;
        chunk.text(start..layout.suffix.end)
    }

    /// Bytes the record at `loc` takes (0 if unreadable).
    pub(super) fn record_len(&self, loc: Loc) -> usize {
        self.locate(loc)
            .and_then(|(chunk, start)| Layout::parse(chunk.bytes(), start))
            .map_or(0, |layout| layout.len())
    }

    /// Room for a record of `len` bytes: its location and the chunk to
    /// append it to. `None` when the shard has no chunk numbers left.
    fn room(&mut self, len: usize) -> Option<(Loc, &mut Chunk)> {
        let index = if len > MAX_SHARED_RECORD {
            self.new_chunk(len)?
        } else {
            let open = self
                .open
                .filter(|&i| self.chunks.get(i).is_some_and(|c| c.room() >= len));
            match open {
                Some(i) => i,
                None => {
                    let size = match self.shared {
                        n @ 0..HEAP_CHUNKS => FIRST_CHUNK << (2 * n),
                        _ => CHUNK,
                    };
                    let i = self.new_chunk(size.max(len))?;
                    self.open = Some(i);
                    self.shared += 1;
                    i
                }
            }
        };
        let chunk = self.chunks.get_mut(index)?;
        let loc = ((index as u32) << OFFSET_BITS) | chunk.len() as u32;
        self.used += len;
        Some((loc, chunk))
    }

    /// Allocates a chunk; `None` when the shard has no chunk numbers left.
    fn new_chunk(&mut self, capacity: usize) -> Option<usize> {
        if self.chunks.len() >= MAX_CHUNKS {
            return None;
        }
        self.chunks.push(Chunk::new(capacity));
        Some(self.chunks.len() - 1)
    }

    /// Appends a record for `code` → `link`.
    pub(super) fn append(&mut self, code: &str, link: LinkRef<'_>) -> Option<Loc> {
        let numbers = [
            code.len() as u64,
            link.prefix.len() as u64,
            link.suffix.len() as u64,
            zigzag(link.id),
            (u64::from(link.provider) << 2)
                | (u64::from(link.routes.is_some()) << 1)
                | u64::from(link.disabled),
        ];
        let len = numbers.iter().map(|&n| varint_len(n)).sum::<usize>()
            + code.len()
            + link.prefix.len()
            + link.suffix.len();
        let (loc, chunk) = self.room(len)?;
        let [code_len, prefix_len, suffix_len, id, meta] = numbers;
        chunk.push_varint(code_len);
        chunk.push(code);
        chunk.push_varint(prefix_len);
        chunk.push_varint(suffix_len);
        chunk.push_varint(id);
        chunk.push_varint(meta);
        chunk.push(link.prefix);
        chunk.push(link.suffix);
        Some(loc)
    }

    /// Appends a record as read from another arena.
    pub(super) fn copy(&mut self, record: &str) -> Option<Loc> {
        let (loc, chunk) = self.room(record.len())?;
        chunk.push(record);
        Some(loc)
    }

    /// Bytes allocated for chunks.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.chunks.iter().map(Chunk::footprint).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_stay_ascii() {
        for v in [0, 1, 63, 64, 4095, 4096, u64::from(u32::MAX), u64::MAX] {
            let (bytes, n) = encode_varint(v);
            let s = &bytes[..n];
            assert_eq!(s.len(), varint_len(v), "{v}");
            assert!(s.is_ascii(), "{v}");
            let mut pos = 0;
            assert_eq!(get_varint(s, &mut pos), Some(v));
            assert_eq!(pos, s.len());
        }
        for id in [0, 1, -1, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(id)), id);
        }
    }

    #[test]
    fn truncated_or_overlong_varints_read_as_none() {
        assert_eq!(get_varint(b"", &mut 0), None);
        assert_eq!(get_varint(&[VARINT_MORE | 1], &mut 0), None);
        assert_eq!(get_varint(&[VARINT_MORE; 12], &mut 0), None);
    }

    #[test]
    fn large_records_get_their_own_chunk_and_leave_the_shared_one_open() {
        let mut arena = Arena::default();
        let big = "b".repeat(MAX_SHARED_RECORD);
        let small = super::super::CachedLink::new(1, "https://s.test/?s=", "", false, 0);
        let small = small.as_ref();
        let a = arena.append("a", small).expect("room");
        let b = arena
            .append(
                "b",
                LinkRef {
                    prefix: &big,
                    ..small
                },
            )
            .expect("room");
        let c = arena.append("c", small).expect("room");
        assert_eq!(
            a >> OFFSET_BITS,
            c >> OFFSET_BITS,
            "the small records share a chunk"
        );
        assert_ne!(a >> OFFSET_BITS, b >> OFFSET_BITS);
        assert_eq!(arena.chunks.len(), 2);
        assert_eq!(arena.link(b).map(|l| l.prefix.len()), Some(big.len()));
        assert_eq!(arena.code(c), Some(&b"c"[..]));
        assert_eq!(arena.link(c), Some(small));
    }

    #[test]
    fn a_large_arena_fills_mapped_chunks_and_reads_every_record_back() {
        let mut arena = Arena::default();
        let prefix = "https://www.amazon.com/dp/B000000000?tag=linkwright-20&ascsubtag=";
        let links: Vec<(String, super::super::CachedLink)> = (0..12_000)
            .map(|i| {
                let suffix = if i % 7 == 0 { "&é=ü" } else { "" };
                let link = super::super::CachedLink::new(i, prefix, suffix, i % 2 == 0, 3);
                (format!("code{i}"), link)
            })
            .collect();
        let locs: Vec<Loc> = links
            .iter()
            .map(|(code, link)| arena.append(code, link.as_ref()).expect("room"))
            .collect();
        // 4 + 16 + 64 + 256 KiB on the heap, the rest (about a megabyte) in
        // one 2 MiB map, unless the kernel refused it.
        let mapped = arena
            .chunks
            .iter()
            .filter(|c| matches!(c, Chunk::Mapped { .. }))
            .count();
        assert_eq!(arena.chunks.len(), HEAP_CHUNKS + 1);
        if mapped == 1 {
            assert_eq!(arena.mapped_bytes(), CHUNK);
        } else {
            assert_eq!(arena.mapped_bytes(), 0);
        }
        for ((code, link), &loc) in links.iter().zip(&locs) {
            assert_eq!(arena.code(loc), Some(code.as_bytes()));
            assert_eq!(arena.link(loc), Some(link.as_ref()), "{code}");
            // Copying the record (as compaction does) keeps it whole.
            let mut fresh = Arena::default();
            let copied = fresh
                .copy(arena.record(loc).expect("record"))
                .expect("room");
            assert_eq!(fresh.link(copied), Some(link.as_ref()));
        }
    }
}
