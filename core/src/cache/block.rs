//! Zeroed, 64-byte-aligned memory for the link cache's arena chunks and
//! index tables: huge pages for large blocks, the heap for small ones.
//!
//! A hit over a million links misses the CPU caches twice (index bucket,
//! record), and with 4 KiB pages each miss also misses the TLB, which costs
//! a page walk (two-dimensional on a VM). A block of at least
//! [`MAPPED_MIN`] bytes is therefore an anonymous map of whole 2 MiB huge
//! pages, advised `MADV_HUGEPAGE` so it is backed by huge pages even where
//! transparent huge pages are in `madvise` mode (the map's length is a
//! multiple of 2 MiB, which recent kernels align to one). Where the map or the
//! advice fails, the block silently falls back to the heap or to small
//! pages: huge pages only make it faster.
//!
//! Blocks are bytes, read and written as such: no `unsafe`, and nothing
//! but this module knows where the memory came from.

use memmap2::{Advice, MmapMut, MmapOptions};

/// Size of a huge page.
pub(super) const HUGE_PAGE: usize = 2 << 20;
/// Blocks of this size and larger are mapped in huge pages.
pub(super) const MAPPED_MIN: usize = 512 << 10;
/// Alignment of a block's first byte (a cache line).
const ALIGN: usize = 64;

#[derive(Debug)]
enum Memory {
    /// `ALIGN - 1` bytes longer than the block, which starts at `start`.
    Heap {
        bytes: Vec<u8>,
        start: usize,
    },
    Mapped(MmapMut),
}

/// A zeroed block of memory of a fixed length.
#[derive(Debug)]
pub(super) struct Block {
    memory: Memory,
    len: usize,
}

impl Block {
    /// A zeroed block of `len` bytes.
    pub(super) fn zeroed(len: usize) -> Block {
        if len >= MAPPED_MIN {
            let mapped = MmapOptions::new()
                .len(len.next_multiple_of(HUGE_PAGE))
                .map_anon();
            if let Ok(map) = mapped {
                // Not supported (no THP, an old kernel): small pages.
                let _ = map.advise(Advice::HugePage);
                return Block {
                    memory: Memory::Mapped(map),
                    len,
                };
            }
        }
        let bytes = vec![0u8; len + ALIGN - 1];
        let start = bytes.as_ptr().addr().next_multiple_of(ALIGN) - bytes.as_ptr().addr();
        Block {
            memory: Memory::Heap { bytes, start },
            len,
        }
    }

    /// The block's bytes.
    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        match &self.memory {
            Memory::Heap { bytes, start } => &bytes[*start..*start + self.len],
            Memory::Mapped(map) => &map[..self.len],
        }
    }

    /// The block's bytes, to write.
    #[inline]
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.memory {
            Memory::Heap { bytes, start } => &mut bytes[*start..*start + self.len],
            Memory::Mapped(map) => &mut map[..self.len],
        }
    }

    /// The block's length.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of memory the block holds: its heap allocation, or its whole
    /// map (huge pages are faulted in whole).
    pub(super) fn footprint(&self) -> usize {
        match &self.memory {
            Memory::Heap { bytes, .. } => bytes.capacity(),
            Memory::Mapped(map) => map.len(),
        }
    }

    /// Whether the block is mapped (rather than on the heap).
    pub(super) fn is_mapped(&self) -> bool {
        matches!(self.memory, Memory::Mapped(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_zeroed_aligned_and_writable_small_and_large() {
        for len in [0, 1, 100, MAPPED_MIN - 1, MAPPED_MIN, HUGE_PAGE + 1] {
            let mut block = Block::zeroed(len);
            assert_eq!(block.len(), len);
            assert!(block.bytes().iter().all(|&b| b == 0), "{len}");
            assert_eq!(block.bytes().as_ptr().addr() % ALIGN, 0, "{len}");
            if let Some(last) = block.bytes_mut().last_mut() {
                *last = 7;
            }
            assert_eq!(block.bytes().last().copied(), (len > 0).then_some(7));
            assert!(block.footprint() >= len);
            if block.is_mapped() {
                assert!(len >= MAPPED_MIN);
                assert_eq!(block.footprint() % HUGE_PAGE, 0);
            }
        }
    }
}
