//! Reads an embedded TrueType/OpenType font's `cmap` table backwards: glyph
//! id → character, for CID fonts with Identity ordering and no `/ToUnicode`.

use std::collections::HashMap;

/// Glyph ids are 16 bits: a `cmap` mapping a code past this glyph maps it
/// to no glyph of the font.
const GLYPHS: usize = 0x1_0000;

/// Glyph id → the character the font's Unicode `cmap` subtable maps to it
/// (the lowest code point where several do). Empty when the font has no
/// readable Unicode subtable.
///
/// Whatever the subtable says, its walk (see [`Walk`]) costs no more than
/// its records and the font's glyph ids: segments and groups are taken in
/// the ascending order the format requires, a code an earlier one covered
/// is not walked again, nor a glyph that has its code. (Fuzzing run 39's
/// overlapping groups each walked the same 65,536 codes again, 12 bytes
/// apiece.)
pub(crate) fn glyph_to_char(font: &[u8]) -> HashMap<u16, char> {
    let Some(cmap) = table(font, b"cmap") else {
        return HashMap::new();
    };
    let count = u16_at(cmap, 2).unwrap_or(0) as usize;
    // Prefer the full-repertoire subtable, then the BMP one.
    let mut best: Option<(u8, usize)> = None;
    for i in 0..count {
        let rec = 4 + i * 8;
        let (Some(platform), Some(encoding), Some(offset)) = (
            u16_at(cmap, rec),
            u16_at(cmap, rec + 2),
            u32_at(cmap, rec + 4),
        ) else {
            break;
        };
        let rank = match (platform, encoding) {
            (3, 10) | (0, 4) | (0, 6) => 3,
            (3, 1) | (0, _) => 2,
            _ => 0,
        };
        if rank > 0 && best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, offset as usize));
        }
    }
    let Some(sub) = best.and_then(|(_, offset)| cmap.get(offset..)) else {
        return HashMap::new();
    };
    let mut walk = Walk::default();
    match u16_at(sub, 0) {
        Some(4) => {
            let segs = u16_at(sub, 6).unwrap_or(0) as usize / 2;
            let ends = 14;
            let starts = ends + segs * 2 + 2;
            let deltas = starts + segs * 2;
            let range_offsets = deltas + segs * 2;
            for s in 0..segs {
                let (Some(end), Some(start), Some(delta), Some(ro)) = (
                    u16_at(sub, ends + s * 2),
                    u16_at(sub, starts + s * 2),
                    u16_at(sub, deltas + s * 2),
                    u16_at(sub, range_offsets + s * 2),
                ) else {
                    break;
                };
                if start == 0xFFFF {
                    continue;
                }
                let Some((first, last)) = walk.codes(start as u32, end as u32) else {
                    continue;
                };
                for code in first as u16..=last as u16 {
                    let gid = if ro == 0 {
                        code.wrapping_add(delta)
                    } else {
                        let at = range_offsets + s * 2 + ro as usize + (code - start) as usize * 2;
                        match u16_at(sub, at) {
                            Some(0) | None => 0,
                            Some(g) => g.wrapping_add(delta),
                        }
                    };
                    walk.put(code as u32, gid as usize);
                }
            }
        }
        Some(12) => {
            let groups = u32_at(sub, 12).unwrap_or(0) as usize;
            for g in 0..groups.min(1 << 20) {
                let at = 16 + g * 12;
                let (Some(start), Some(end), Some(gid)) =
                    (u32_at(sub, at), u32_at(sub, at + 4), u32_at(sub, at + 8))
                else {
                    break;
                };
                // Only the codes whose glyph id is 16 bits; neither the
                // end nor the glyph ids may overflow near `u32::MAX`.
                let Some(room) = (GLYPHS as u32 - 1).checked_sub(gid) else {
                    continue;
                };
                if let Some((first, last)) = walk.codes(start, end.min(start.saturating_add(room)))
                {
                    let gid = |code: u32| (gid + (code - start)) as usize;
                    walk.put_run(first, gid(first), gid(last));
                }
            }
        }
        Some(6) => {
            let first = u16_at(sub, 6).unwrap_or(0) as u32;
            let count = u16_at(sub, 8).unwrap_or(0) as usize;
            for k in 0..count {
                if let Some(gid) = u16_at(sub, 10 + k * 2) {
                    walk.put(first + k as u32, gid as usize);
                }
            }
        }
        Some(0) => {
            for code in 0..256usize {
                if let Some(&gid) = sub.get(6 + code) {
                    walk.put(code as u32, gid as usize);
                }
            }
        }
        _ => {}
    }
    walk.finish()
}

/// A walk over a subtable's codes. It takes them in ascending order, each
/// once, so the first code a glyph meets is its lowest; and it skips a
/// run of glyphs that already have one by a path it shortens at each
/// search. So a subtable costs about a step per record and a few per
/// glyph id, and a format 4 one (16-bit codes, each glyph read from the
/// table) one per code.
#[derive(Default)]
struct Walk {
    /// Indexed by glyph id: its lowest code, `u32::MAX` for none yet.
    lowest: Vec<u32>,
    /// Indexed by glyph id (and `GLYPHS`, where none is left): a glyph id
    /// at or after it, at or before the first from it with no code yet.
    free: Vec<u32>,
    /// The lowest code no segment or group has covered yet.
    next: u32,
}

impl Walk {
    /// The first and last of the codes of `start..=end` that no earlier
    /// segment or group covered, and no more than Unicode has, if any;
    /// marks them covered.
    fn codes(&mut self, start: u32, end: u32) -> Option<(u32, u32)> {
        let end = end.min(char::MAX as u32);
        let start = start.max(self.next);
        if start > end {
            return None;
        }
        self.next = end + 1;
        Some((start, end))
    }

    /// Records that `code`, above every code recorded before, maps to
    /// glyph `gid`.
    fn put(&mut self, code: u32, gid: usize) {
        self.put_run(code, gid, gid);
    }

    /// Records that the codes from `first_code` up, above every code
    /// recorded before, map to glyphs `first..=last` in turn.
    fn put_run(&mut self, first_code: u32, first: usize, last: usize) {
        // Glyph 0 is `.notdef`: no text.
        let (first_code, first, last) = match first {
            0 => (first_code + 1, 1, last.min(GLYPHS - 1)),
            _ => (first_code, first, last.min(GLYPHS - 1)),
        };
        if first > last {
            return;
        }
        if self.lowest.is_empty() {
            self.lowest = vec![u32::MAX; GLYPHS];
            self.free = (0..=GLYPHS as u32).collect();
        }
        let mut gid = self.first_free(first);
        while gid <= last {
            let code = first_code + (gid - first) as u32;
            if char::from_u32(code).is_some() {
                self.lowest[gid] = code;
                self.free[gid] = gid as u32 + 1;
            }
            gid = self.first_free(gid + 1);
        }
    }

    /// The first glyph id from `gid` with no code yet, or `GLYPHS`.
    fn first_free(&mut self, mut gid: usize) -> usize {
        while self.free[gid] as usize != gid {
            let next = self.free[gid] as usize;
            // Point it past its successor: shorter for the next search.
            self.free[gid] = self.free[next];
            gid = next;
        }
        gid
    }

    fn finish(self) -> HashMap<u16, char> {
        self.lowest
            .iter()
            .enumerate()
            .filter_map(|(gid, &code)| Some((gid as u16, char::from_u32(code)?)))
            .collect()
    }
}

fn table<'a>(font: &'a [u8], tag: &[u8; 4]) -> Option<&'a [u8]> {
    let count = u16_at(font, 4)? as usize;
    for i in 0..count {
        let rec = 12 + i * 16;
        if font.get(rec..rec + 4)? == tag {
            let offset = u32_at(font, rec + 8)? as usize;
            let len = u32_at(font, rec + 12)? as usize;
            return font.get(offset..offset.checked_add(len)?.min(font.len()));
        }
    }
    None
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_empty_not_a_panic() {
        assert!(glyph_to_char(b"").is_empty());
        assert!(glyph_to_char(&[0, 1, 0, 0, 0, 200, 0, 0]).is_empty());
        assert!(glyph_to_char(&cmap_record(u32::MAX, 16)).is_empty());
    }

    /// A font header with one table, `cmap`, at `offset`, `len` bytes long.
    fn cmap_record(offset: u32, len: u32) -> Vec<u8> {
        let mut font = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        font.extend_from_slice(b"cmap\0\0\0\0");
        font.extend_from_slice(&offset.to_be_bytes());
        font.extend_from_slice(&len.to_be_bytes());
        font
    }

    /// One `cmap` subtable (3,10) of format 12 with `groups` (start code,
    /// end code, first glyph id).
    fn format_12(groups: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut sub = [12u16.to_be_bytes(), [0, 0]].concat();
        for n in [16 + 12 * groups.len() as u32, 0, groups.len() as u32] {
            sub.extend_from_slice(&n.to_be_bytes());
        }
        for &(start, end, gid) in groups {
            for n in [start, end, gid] {
                sub.extend_from_slice(&n.to_be_bytes());
            }
        }
        let mut cmap = [0u16, 1, 3, 10]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect::<Vec<_>>();
        cmap.extend_from_slice(&12u32.to_be_bytes());
        cmap.extend_from_slice(&sub);
        let mut font = cmap_record(28, cmap.len() as u32);
        font.extend_from_slice(&cmap);
        font
    }

    #[test]
    fn format_12_groups_read_and_a_group_at_the_top_of_the_range_does_not_overflow() {
        let map = glyph_to_char(&format_12(&[(0x41, 0x43, 7)]));
        assert_eq!((map[&7], map[&8], map[&9]), ('A', 'B', 'C'));
        // Found by `parse_batch` with overflow checks on: `start + 0xFFFF`
        // and the glyph id past `u32::MAX` (no such code is a char).
        assert!(glyph_to_char(&format_12(&[(0xFFFF_FFF0, 0xFFFF_FFFF, u32::MAX)])).is_empty());
    }

    #[test]
    fn a_walk_covers_each_code_once_and_no_code_past_unicode() {
        let mut walk = Walk::default();
        let visited = (0..100_000)
            .filter_map(|_| walk.codes(0x2_0000, 0x2_FFFF))
            .map(|(first, last)| last - first + 1)
            .sum::<u32>();
        assert_eq!(visited, 0x1_0000);
        // Out of order: nothing; overlapping: only its new codes.
        assert_eq!(walk.codes(0x41, 0x41), None);
        assert_eq!(walk.codes(0x2_FFF0, 0x3_000F), Some((0x3_0000, 0x3_000F)));
        assert_eq!(
            walk.codes(0x10_FFF0, u32::MAX),
            Some((0x10_FFF0, 0x10_FFFF))
        );
        assert_eq!(walk.codes(0x11_0000, u32::MAX), None);
    }

    #[test]
    fn overlapping_groups_read_as_the_first_and_one_out_of_order_is_not_read() {
        // Fuzzing run 39's slow input had 100,000 groups over the same
        // codes (1.2 MB); each used to walk its 65,536 codes again.
        let mut groups = vec![(0x2_0000, 0x2_00FF, 1); 100_000];
        groups.push((0x41, 0x41, 60_000));
        groups.push((0x3_0000, 0x3_0000, 500));
        let map = glyph_to_char(&format_12(&groups));
        assert_eq!(map.len(), 257);
        assert_eq!((map[&1], map[&256]), ('\u{2_0000}', '\u{2_00FF}'));
        assert_eq!(map.get(&60_000), None);
        assert_eq!(map[&500], '\u{3_0000}');
    }

    #[test]
    fn glyphs_that_have_a_code_are_skipped() {
        let mut walk = Walk::default();
        walk.put_run(0x1_0000, 1, 65_000);
        assert_eq!(walk.first_free(1), 65_001);
        // Groups of fresh codes over the same glyphs: only the glyphs
        // with no code yet take one.
        walk.put_run(0x2_0000, 64_990, 65_010);
        assert_eq!(walk.first_free(1), 65_011);
        let map = walk.finish();
        assert_eq!(map.len(), 65_010);
        assert_eq!((map[&1], map[&65_000]), ('\u{1_0000}', '\u{1_FDE7}'));
        assert_eq!(map[&65_001], '\u{2_000B}');
        // A surrogate is no text: its glyph waits for a later code.
        let mut walk = Walk::default();
        walk.put_run(0xD7FF, 1, 3);
        walk.put_run(0xE000, 2, 2);
        assert_eq!(walk.finish()[&2], '\u{E000}');
    }

    #[test]
    fn a_group_past_the_last_glyph_id_maps_only_the_codes_before_it() {
        let map = glyph_to_char(&format_12(&[(0x100, 0x1FF, 0xFFF0)]));
        assert_eq!(map.len(), 0x10);
        assert_eq!(map[&0xFFFF], '\u{10F}');
    }
}
