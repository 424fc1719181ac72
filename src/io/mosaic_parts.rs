//! A mosaic's grid split into parts that can be counted apart: for each file, the pixels only
//! that file's extent covers, and one shared part with the pixels of every overlap and of the
//! gaps no file covers. Each part reads the same pixel values as the whole mosaic: in a file's
//! own part no other file competes, and the shared part is read through the mosaic itself, so
//! its order of precedence and its check that overlapping files agree apply there. Knows
//! rectangles on a grid, not land classes.

use crate::io::mosaic::Mosaic;

/// One part of a mosaic's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MosaicPart {
    /// The pixels inside file `i`'s extent and no other file's.
    Alone(usize),
    /// The pixels inside two or more files' extents, or inside none.
    Shared,
}

impl MosaicPart {
    /// Every part of `mosaic`: each file alone, in file order, then the shared part.
    pub fn all(mosaic: &Mosaic) -> Vec<MosaicPart> {
        (0..mosaic.files.len())
            .map(MosaicPart::Alone)
            .chain(std::iter::once(MosaicPart::Shared))
            .collect()
    }

    /// The columns of row `row` in this part, as sorted disjoint ranges (ends exclusive).
    pub fn columns(self, mosaic: &Mosaic, row: usize) -> Vec<(u32, u32)> {
        let ranges = covered_ranges(mosaic, row);
        let mut out: Vec<(u32, u32)> = Vec::new();
        let mut push = |c0: usize, c1: usize| {
            let (c0, c1) = (to_u32(c0), to_u32(c1));
            match out.last_mut() {
                Some(last) if last.1 == c0 => last.1 = c1,
                _ if c0 < c1 => out.push((c0, c1)),
                _ => {}
            }
        };
        let mut at = 0;
        for (c0, c1, files) in ranges {
            let alone = (files.len() == 1).then(|| files[0]);
            match self {
                MosaicPart::Alone(i) if alone == Some(i) => push(c0, c1),
                MosaicPart::Alone(_) => {}
                MosaicPart::Shared => {
                    push(at, c0);
                    if alone.is_none() {
                        push(c0, c1);
                    }
                }
            }
            at = c1;
        }
        if self == MosaicPart::Shared {
            push(at, mosaic.width);
        }
        out
    }

    /// The mosaic this part is read through: the file alone, or the whole mosaic.
    pub fn layer(self, mosaic: &Mosaic) -> Result<Mosaic, String> {
        match self {
            MosaicPart::Alone(i) => {
                Mosaic::new(vec![mosaic.files[i].clone()], mosaic.width, mosaic.height)
            }
            MosaicPart::Shared => Ok(mosaic.clone()),
        }
    }
}

fn to_u32(c: usize) -> u32 {
    u32::try_from(c).expect("grid columns fit u32")
}

/// The columns of `row` that some file covers, cut where the set of covering files changes:
/// `(col0, col1, files)`, left to right, files in file order.
fn covered_ranges(mosaic: &Mosaic, row: usize) -> Vec<(usize, usize, Vec<usize>)> {
    let on_row: Vec<(usize, usize, usize)> = mosaic
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| (f.row..f.row + f.info.height).contains(&row))
        .map(|(i, f)| (i, f.col, f.col + f.info.width))
        .collect();
    let mut cuts: Vec<usize> = on_row.iter().flat_map(|&(_, a, b)| [a, b]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .filter_map(|w| {
            let files: Vec<usize> = on_row
                .iter()
                .filter(|&&(_, a, b)| a <= w[0] && w[1] <= b)
                .map(|&(i, ..)| i)
                .collect();
            (!files.is_empty()).then(|| (w[0], w[1], files))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::geotiff_writer::{CategoricalRaster, Crs, GridPlacement, write_categorical};
    use crate::io::mosaic::Placed;

    /// A mosaic of files with the given extents `(col, row, width, height)` on a 12 × 6 grid.
    fn mosaic(dir: &std::path::Path, rects: &[(usize, usize, usize, usize)]) -> Mosaic {
        let files = rects
            .iter()
            .enumerate()
            .map(|(i, &(col, row, w, h))| {
                let path = dir.join(format!("f{i}.tif"));
                let codes = vec![1u8; w * h];
                let raster = CategoricalRaster {
                    width: u32::try_from(w).unwrap(),
                    height: u32::try_from(h).unwrap(),
                    codes: &codes,
                    placement: GridPlacement {
                        x_min: col as f64,
                        y_max: -(row as f64),
                        pixel_width: 1.0,
                        pixel_height: 1.0,
                    },
                    crs: Crs::EpsgProjected(3857),
                    nodata: Some(0),
                    description: None,
                };
                write_categorical(&path, &raster).unwrap();
                Placed {
                    info: crate::io::geotiff::open(&path).unwrap(),
                    col,
                    row,
                }
            })
            .collect();
        Mosaic::new(files, 12, 6).unwrap()
    }

    #[test]
    fn the_parts_of_a_row_cover_it_once() {
        let dir = tempfile::tempdir().unwrap();
        // File 0 covers columns 0..5 of rows 0..4, file 1 columns 3..9 of rows 1..6: row 2 has
        // 0–2 for file 0 alone, 3–4 shared, 5–8 for file 1 alone and 9–11 in no file.
        let m = mosaic(dir.path(), &[(0, 0, 5, 4), (3, 1, 6, 5)]);
        assert_eq!(MosaicPart::Alone(0).columns(&m, 2), [(0, 3)]);
        assert_eq!(MosaicPart::Alone(1).columns(&m, 2), [(5, 9)]);
        assert_eq!(MosaicPart::Shared.columns(&m, 2), [(3, 5), (9, 12)]);
        // Row 0 holds file 0 only: the rest of the row is a gap, shared.
        assert_eq!(MosaicPart::Alone(0).columns(&m, 0), [(0, 5)]);
        assert!(MosaicPart::Alone(1).columns(&m, 0).is_empty());
        assert_eq!(MosaicPart::Shared.columns(&m, 0), [(5, 12)]);
        // Every pixel of every row in exactly one part.
        for row in 0..6 {
            let mut seen = vec![0; 12];
            for part in MosaicPart::all(&m) {
                for (a, b) in part.columns(&m, row) {
                    (a..b).for_each(|c| seen[c as usize] += 1);
                }
            }
            assert_eq!(seen, vec![1; 12], "row {row}");
        }
    }

    #[test]
    fn a_file_inside_another_has_no_part_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        // File 1 (columns 2..4) lies inside file 0 (columns 0..12): all of it is shared.
        let m = mosaic(dir.path(), &[(0, 0, 12, 6), (2, 0, 2, 6)]);
        assert!(MosaicPart::Alone(1).columns(&m, 3).is_empty());
        assert_eq!(MosaicPart::Alone(0).columns(&m, 3), [(0, 2), (4, 12)]);
        assert_eq!(MosaicPart::Shared.columns(&m, 3), [(2, 4)]);
    }
}
