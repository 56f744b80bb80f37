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
//! ```text
//! ```
//!
//! The numbers are ASCII varints (6 bits a byte, 0x40 meaning "more"), so a
//! chunk, a `String`, is valid UTF-8 at all times and the template halves
//! are sliced out of it as `&str` in O(1), with no revalidation and no
//! `unsafe`. The code comes first, so a probe compares it after one length
//! byte.
//!
//! Chunks are allocated once at their final capacity (4 KiB doubling to
//! 64 KiB) and filled front to back, so growth never copies and the slack is
//! at most one chunk. Records never straddle chunks; a record over 8 KiB gets
//! a chunk of its own, which bounds the unused tail of a shared chunk to an
//! eighth of it.

use std::ops::Range;

use super::LinkRef;

/// A varint byte's payload bits; the 0x40 bit says another byte follows.
const VARINT_BITS: u32 = 6;
const VARINT_MORE: u8 = 0x40;
const VARINT_MASK: u8 = 0x3f;

/// Bytes `v` takes as an ASCII varint.
fn varint_len(v: u64) -> usize {
    let bits = (u64::BITS - v.leading_zeros()).max(1);
    bits.div_ceil(VARINT_BITS) as usize
}

/// Appends `v` as an ASCII varint: every byte is below 0x80, so the string
/// stays valid UTF-8.
fn put_varint(out: &mut String, mut v: u64) {
    loop {
        let byte = (v as u8) & VARINT_MASK;
        v >>= VARINT_BITS;
        if v == 0 {
            out.push(char::from(byte));
            return;
        }
        out.push(char::from(byte | VARINT_MORE));
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

/// Where a record is: chunk number in the high 16 bits, offset of the
/// record's first byte in the chunk in the low 16 bits.
pub(super) type Loc = u32;

/// Capacity of a full-size chunk. Records start below 64 KiB, so their
/// offset fits the low half of a [`Loc`].
pub(super) const CHUNK: usize = 64 * 1024;
/// Capacity of a shard's first chunk; each next one doubles, up to [`CHUNK`].
const FIRST_CHUNK: usize = 4 * 1024;
/// Records larger than this get a chunk of their own, so the unused tail
/// of a shared chunk is at most this.
pub(super) const MAX_SHARED_RECORD: usize = CHUNK / 8;
/// Chunks a shard can address.
const MAX_CHUNKS: usize = 1 << 16;

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

/// A shard's record storage: chunks allocated at their final capacity and
/// filled front to back.
#[derive(Debug, Default)]
pub(super) struct Arena {
    chunks: Vec<String>,
    /// Record bytes appended, live or dead.
    pub(super) used: usize,
    /// The shared chunk being filled. Chunks of single large records come
    /// and go beside it without closing it.
    open: Option<usize>,
    /// Shared chunks allocated so far (they double in size up to [`CHUNK`]).
    shared: usize,
}

impl Arena {
    /// Heap bytes held: every chunk's capacity and the chunk list.
    pub(super) fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(String::capacity).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<String>()
    }

    /// The chunk and offset of a location.
    #[inline]
    fn locate(&self, loc: Loc) -> Option<(&String, usize)> {
        let chunk = self.chunks.get((loc >> 16) as usize)?;
        Some((chunk, (loc & 0xffff) as usize))
    }

    /// The code of the record at `loc` (a probe's comparison).
    #[inline]
    pub(super) fn code(&self, loc: Loc) -> Option<&[u8]> {
        let (chunk, mut pos) = self.locate(loc)?;
        let bytes = chunk.as_bytes();
        let len = get_len(bytes, &mut pos)?;
        bytes.get(pos..pos.checked_add(len)?)
    }

    /// The link in the record at `loc`.
    #[inline]
    pub(super) fn link(&self, loc: Loc) -> Option<LinkRef<'_>> {
        let (chunk, start) = self.locate(loc)?;
        let layout = Layout::parse(chunk.as_bytes(), start)?;
        Some(LinkRef {
            id: layout.id,
            provider: u16::try_from(layout.meta >> 2).ok()?,
            disabled: layout.meta & 1 == 1,
            routed: layout.meta & 2 == 2,
            routes: None,
            prefix: chunk.get(layout.prefix)?,
            suffix: chunk.get(layout.suffix)?,
        })
    }

    /// The whole record at `loc`, as stored.
    pub(super) fn record(&self, loc: Loc) -> Option<&str> {
        let (chunk, start) = self.locate(loc)?;
        let layout = Layout::parse(chunk.as_bytes(), start)?;
        chunk.get(start..layout.suffix.end)
    }

    /// Bytes the record at `loc` takes (0 if unreadable).
    pub(super) fn record_len(&self, loc: Loc) -> usize {
        self.locate(loc)
            .and_then(|(chunk, start)| Layout::parse(chunk.as_bytes(), start))
            .map_or(0, |layout| layout.len())
    }

    /// Room for a record of `len` bytes: its location and the chunk to
    /// append it to. `None` when the shard has no chunk numbers left.
    fn room(&mut self, len: usize) -> Option<(Loc, &mut String)> {
        let index = if len > MAX_SHARED_RECORD {
            self.new_chunk(len)?
        } else {
            let open = self.open.filter(|&i| {
                self.chunks.get(i).is_some_and(|c| {
                    c.len() <= usize::from(u16::MAX) && c.capacity() - c.len() >= len
                })
            });
            match open {
                Some(i) => i,
                None => {
                    let i = self.new_chunk((FIRST_CHUNK << self.shared.min(4)).max(len))?;
                    self.open = Some(i);
                    self.shared += 1;
                    i
                }
            }
        };
        let chunk = self.chunks.get_mut(index)?;
        let loc = ((index as u32) << 16) | chunk.len() as u32;
        self.used += len;
        Some((loc, chunk))
    }

    /// Allocates a chunk; `None` when the shard has no chunk numbers left.
    fn new_chunk(&mut self, capacity: usize) -> Option<usize> {
        if self.chunks.len() >= MAX_CHUNKS {
            return None;
        }
        self.chunks.push(String::with_capacity(capacity));
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
        put_varint(chunk, code_len);
        chunk.push_str(code);
        put_varint(chunk, prefix_len);
        put_varint(chunk, suffix_len);
        put_varint(chunk, id);
        put_varint(chunk, meta);
        chunk.push_str(link.prefix);
        chunk.push_str(link.suffix);
        Some(loc)
    }

    /// Appends a record as read from another arena.
    pub(super) fn copy(&mut self, record: &str) -> Option<Loc> {
        let (loc, chunk) = self.room(record.len())?;
        chunk.push_str(record);
        Some(loc)
    }

    /// Bytes allocated for chunks.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.chunks.iter().map(String::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_stay_ascii() {
        for v in [0, 1, 63, 64, 4095, 4096, u64::from(u32::MAX), u64::MAX] {
            let mut s = String::new();
            put_varint(&mut s, v);
            assert_eq!(s.len(), varint_len(v), "{v}");
            assert!(s.is_ascii(), "{v}");
            let mut pos = 0;
            assert_eq!(get_varint(s.as_bytes(), &mut pos), Some(v));
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
        assert_eq!(a >> 16, c >> 16, "the small records share a chunk");
        assert_ne!(a >> 16, b >> 16);
        assert_eq!(arena.chunks.len(), 2);
        assert_eq!(arena.link(b).map(|l| l.prefix.len()), Some(big.len()));
        assert_eq!(arena.code(c), Some(&b"c"[..]));
        assert_eq!(arena.link(c), Some(small));
    }
}
