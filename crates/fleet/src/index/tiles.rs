//! Cells grouped in 8×8 tiles, and a small cache of the tiles a query touches.

use super::{Entry, Map, pack};

/// Cells per tile edge (a power of two).
pub(super) const TILE_SHIFT: i32 = 3;
pub(super) const TILE_EDGE: i32 = 1 << TILE_SHIFT;

/// 8×8 grid cells stored together.
#[derive(Debug, Clone)]
pub(super) struct Tile {
    pub(super) cells: [Vec<Entry>; (TILE_EDGE * TILE_EDGE) as usize],
    pub(super) vehicles: u32,
}

impl Default for Tile {
    fn default() -> Self {
        Self {
            cells: std::array::from_fn(|_| Vec::new()),
            vehicles: 0,
        }
    }
}

#[inline]
pub(super) const fn tile_key(cy: i32, cx: i32) -> u64 {
    pack(cy >> TILE_SHIFT, cx >> TILE_SHIFT)
}

#[allow(clippy::cast_sign_loss)]
#[inline]
pub(super) const fn tile_slot(cy: i32, cx: i32) -> usize {
    (((cy & (TILE_EDGE - 1)) << TILE_SHIFT) | (cx & (TILE_EDGE - 1))) as usize
}

/// Remembers the last few tiles a query looked up (rings revisit the same 1–4 tiles).
pub(super) struct TileCache<'a> {
    recent: [(u64, Option<&'a Tile>); 4],
    next: usize,
}

impl<'a> TileCache<'a> {
    pub(super) fn new() -> Self {
        Self {
            recent: [(u64::MAX, None); 4],
            next: 0,
        }
    }

    #[inline]
    pub(super) fn cell(
        &mut self,
        tiles: &'a Map<u64, Box<Tile>>,
        cy: i32,
        cx: i32,
    ) -> Option<&'a Vec<Entry>> {
        let key = tile_key(cy, cx);
        let tile = match self.recent.iter().find(|(k, _)| *k == key) {
            Some((_, t)) => *t,
            None => {
                let t = tiles.get(&key).map(AsRef::as_ref);
                self.recent[self.next] = (key, t);
                self.next = (self.next + 1) % self.recent.len();
                t
            }
        };
        tile.map(|t| &t.cells[tile_slot(cy, cx)])
    }
}
