//! Reads an embedded TrueType/OpenType font's `cmap` table backwards: glyph
//! id → character, for CID fonts with Identity ordering and no `/ToUnicode`.

use std::collections::HashMap;

/// The most codes one subtable's walk visits: every Unicode scalar value
/// once. A well-formed subtable never visits more; a hostile one whose
/// segments or groups overlap (groups of 65,536 codes over the same codes,
/// 12 bytes each: fuzzing run 39's slow input) stops there.
const MAX_CODES: u32 = 0x11_0000;

/// Glyph id → the character the font's Unicode `cmap` subtable maps to it
/// (the lowest code point where several do). Empty when the font has no
/// readable Unicode subtable.
pub(crate) fn glyph_to_char(font: &[u8]) -> HashMap<u16, char> {
    let mut out = HashMap::new();
    let Some(cmap) = table(font, b"cmap") else {
        return out;
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
    let Some((_, offset)) = best else { return out };
    let Some(sub) = cmap.get(offset..) else {
        return out;
    };
    // Records one code's glyph; false once the walk has visited
    // `MAX_CODES` codes.
    let mut left = MAX_CODES;
    let mut put = |code: u32, gid: u16| {
        if left == 0 {
            return false;
        }
        left -= 1;
        if gid != 0
            && let Some(c) = char::from_u32(code)
        {
            out.entry(gid)
                .and_modify(|old: &mut char| *old = (*old).min(c))
                .or_insert(c);
        }
        true
    };
    match u16_at(sub, 0) {
        Some(4) => {
            let segs = u16_at(sub, 6).unwrap_or(0) as usize / 2;
            let ends = 14;
            let starts = ends + segs * 2 + 2;
            let deltas = starts + segs * 2;
            let range_offsets = deltas + segs * 2;
            'segments: for s in 0..segs {
                let (Some(end), Some(start), Some(delta), Some(ro)) = (
                    u16_at(sub, ends + s * 2),
                    u16_at(sub, starts + s * 2),
                    u16_at(sub, deltas + s * 2),
                    u16_at(sub, range_offsets + s * 2),
                ) else {
                    break;
                };
                if start > end || start == 0xFFFF {
                    continue;
                }
                for code in start..=end {
                    let gid = if ro == 0 {
                        code.wrapping_add(delta)
                    } else {
                        let at = range_offsets + s * 2 + ro as usize + (code - start) as usize * 2;
                        match u16_at(sub, at) {
                            Some(0) | None => 0,
                            Some(g) => g.wrapping_add(delta),
                        }
                    };
                    if !put(code as u32, gid) {
                        break 'segments;
                    }
                }
            }
        }
        Some(12) => {
            let groups = u32_at(sub, 12).unwrap_or(0) as usize;
            'groups: for g in 0..groups.min(1 << 20) {
                let at = 16 + g * 12;
                let (Some(start), Some(end), Some(gid)) =
                    (u32_at(sub, at), u32_at(sub, at + 4), u32_at(sub, at + 8))
                else {
                    break;
                };
                // At most 65,536 codes a group; a group near `u32::MAX`
                // must neither overflow its end nor its glyph ids.
                for (k, code) in (start..=end.min(start.saturating_add(0xFFFF))).enumerate() {
                    if !put(code, gid.wrapping_add(k as u32) as u16) {
                        break 'groups;
                    }
                }
            }
        }
        Some(6) => {
            let first = u16_at(sub, 6).unwrap_or(0) as u32;
            let count = u16_at(sub, 8).unwrap_or(0) as usize;
            for k in 0..count {
                if let Some(gid) = u16_at(sub, 10 + k * 2)
                    && !put(first + k as u32, gid)
                {
                    break;
                }
            }
        }
        Some(0) => {
            for code in 0..256usize {
                if let Some(&gid) = sub.get(6 + code)
                    && !put(code as u32, gid as u16)
                {
                    break;
                }
            }
        }
        _ => {}
    }
    out
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
    fn overlapping_groups_stop_after_every_code_once() {
        // 17 groups of 65,536 codes each over the same codes: 1,114,112
        // visits, `MAX_CODES`; the group after them is not read.
        let mut groups = vec![(0x2_0000, 0x2_FFFF, 1); 17];
        groups.push((0x41, 0x41, 60_000));
        let map = glyph_to_char(&format_12(&groups));
        assert_eq!(map[&1], '\u{2_0000}');
        assert_eq!(map.len(), 65_535);
        // Glyph 60,000 keeps the groups' code, not the lower `A`.
        assert_eq!(map[&60_000], char::from_u32(0x2_0000 + 59_999).unwrap());
        groups.remove(0);
        assert_eq!(glyph_to_char(&format_12(&groups))[&60_000], 'A');
    }
}
