//! The Henan demonstration tables re-printed the way statistical yearbooks print them, for the
//! `henan_yearbook` example study: units named (郑州市区 for the merged urban districts,
//! two-character names padded with an ideographic space), Chinese headers with full-width
//! brackets, a title row and footnotes, thousands separators, 万人 and percent, a wide crop
//! table with Chinese crop names, a GBK-encoded CSV, and each year's land-use map as two tiles.
//!
//! Every number is the demonstration table's own decimal text, only regrouped or with its
//! decimal point moved, so the study reads back exactly the values of `henan_counties`.

use std::path::{Path, PathBuf};

use crate::io::geotiff_writer::{CategoricalRaster, Crs, GridPlacement, write_categorical};
use crate::io::xlsx_writer::{XlsxCell, XlsxSheet, workbook};
use crate::io::yearbook::shift_decimal;

use super::{DEMO_NOTE, DemoError, Grid, Tables, Unit, YEARS, io_err};

/// The folder, beside `henan/`, the yearbook-shaped files go to.
pub const FOLDER: &str = "henan_yearbook";

const FOOTNOTE: &str = "注：本表为演示数据（pipeline demo-data 生成），并非官方统计。";
const SOURCE_NOTE: &str = "资料来源：pipeline demo-data。";

/// The crops of the demonstration table as yearbooks name them.
const CROPS_ZH: [(&str, &str); 7] = [
    ("wheat", "小麦"),
    ("maize", "玉米"),
    ("rice", "稻谷"),
    ("soybean", "大豆"),
    ("peanut", "花生"),
    ("cotton", "棉花"),
    ("vegetables", "蔬菜"),
];

/// The functional categories as the provincial plans name them.
const CATEGORIES_ZH: [(&str, &str); 5] = [
    ("national_key_development", "国家级重点开发区"),
    ("provincial_key_development", "省级重点开发区"),
    ("agricultural_production", "农产品主产区"),
    ("provincial_ecological", "省级重点生态功能区"),
    ("national_ecological", "国家级重点生态功能区"),
];

/// A unit's name as the yearbook prints it.
fn printed_name(unit: &Unit) -> String {
    if unit.id == "410100" {
        return "郑州市区".to_owned();
    }
    let chars: Vec<char> = unit.name.chars().collect();
    if chars.len() == 2 {
        format!("{}\u{3000}{}", chars[0], chars[1])
    } else {
        unit.name.clone()
    }
}

/// `5758213.8` → `5,758,213.8`.
fn with_separators(number: &str) -> String {
    let (int, frac) = number
        .split_once('.')
        .map_or((number, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{grouped}.{f}"),
        None => grouped,
    }
}

/// The rows of a generated CSV table (no quoting in them), header dropped.
fn rows(csv: &str) -> Vec<Vec<&str>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect()
}

fn name_of<'a>(units: &'a [Unit], id: &str) -> &'a Unit {
    units
        .iter()
        .find(|u| u.id == id)
        .expect("every table row belongs to a generated unit")
}

fn shifted(text: &str, k: i32) -> String {
    shift_decimal(text, k).expect("generated numbers are plain decimals")
}

/// `economy.csv` in GBK: a title line, then one row per year and unit (years first, as a
/// yearbook's yearly tables are concatenated), GDP with separators, population in 万人 and the
/// shares in percent.
fn economy_csv(units: &[Unit], tables: &Tables) -> Vec<u8> {
    let mut text = String::from(
        "表 1 河南省各县（市、区）主要经济指标（演示数据）,,,,,,,\n\
         县名,年份,地区生产总值（万元）,年末总人口（万人）,城镇化率（%）,城镇居民恩格尔系数（%）,农村居民恩格尔系数（%）,单位GDP能耗（吨标准煤/万元）\n",
    );
    let mut body = rows(&tables.economy);
    body.sort_by_key(|r| (r[1], r[0]));
    for r in body {
        text.push_str(&format!(
            "{},{},\"{}\",{},{},{},{},{}\n",
            printed_name(name_of(units, r[0])),
            r[1],
            with_separators(r[2]),
            shifted(r[3], -4),
            shifted(r[4], 2),
            shifted(r[5], 2),
            shifted(r[6], 2),
            r[7]
        ));
    }
    text.push_str(&format!(",,,,,,,\n{FOOTNOTE},,,,,,,\n"));
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable, "the economy table is GBK-encodable");
    bytes.into_owned()
}

/// A sheet: a merged title, the header, `body`, an empty row and the two notes.
fn sheet(name: &str, title: &str, header: &[&str], body: Vec<Vec<XlsxCell>>) -> XlsxSheet {
    let mut rows = vec![
        vec![XlsxCell::Text(title.to_owned())],
        header
            .iter()
            .map(|h| XlsxCell::Text((*h).to_owned()))
            .collect(),
    ];
    rows.extend(body);
    rows.push(Vec::new());
    rows.push(vec![XlsxCell::Text(FOOTNOTE.to_owned())]);
    rows.push(vec![XlsxCell::Text(SOURCE_NOTE.to_owned())]);
    XlsxSheet {
        name: name.to_owned(),
        rows,
        merge_title: true,
    }
}

fn name_and_year(units: &[Unit], r: &[&str]) -> Vec<XlsxCell> {
    vec![
        XlsxCell::Text(printed_name(name_of(units, r[0]))),
        XlsxCell::Number(r[1].to_owned()),
    ]
}

/// `yearbook.xlsx`: sheet `能源` (energy, one row per unit and year) and sheet `农作物` (the
/// crop table, wide: one column per crop).
fn workbook_bytes(units: &[Unit], tables: &Tables) -> Vec<u8> {
    let energy_body = rows(&tables.energy)
        .into_iter()
        .map(|r| {
            let mut cells = name_and_year(units, &r);
            cells.extend(r[2..].iter().map(|v| XlsxCell::Number((*v).to_owned())));
            cells
        })
        .collect();
    let energy = sheet(
        "能源",
        "表 2 河南省各县（市、区）能源消费量（演示数据）",
        &[
            "县名",
            "年份",
            "原煤（吨）",
            "焦炭（吨）",
            "原油（吨）",
            "汽油（吨）",
            "煤油（吨）",
            "柴油（吨）",
            "燃料油（吨）",
            "天然气（万立方米）",
            "电力（万千瓦时）",
        ],
        energy_body,
    );
    let mut crop_body: Vec<Vec<XlsxCell>> = Vec::new();
    let mut last: Option<(String, String)> = None;
    for r in rows(&tables.crops) {
        let key = (r[0].to_owned(), r[1].to_owned());
        if last.as_ref() != Some(&key) {
            let mut row = name_and_year(units, &r);
            row.resize(2 + CROPS_ZH.len(), XlsxCell::Empty);
            crop_body.push(row);
            last = Some(key);
        }
        let column = 2 + CROPS_ZH
            .iter()
            .position(|(en, _)| *en == r[2])
            .expect("demonstration crops have Chinese names");
        crop_body.last_mut().expect("a row was just pushed")[column] =
            XlsxCell::Number(r[3].to_owned());
    }
    let mut header = vec!["县名", "年份"];
    header.extend(CROPS_ZH.iter().map(|(_, zh)| *zh));
    let crops = sheet(
        "农作物",
        "表 3 河南省各县（市、区）主要农作物产量（吨，演示数据）",
        &header,
        crop_body,
    );
    workbook(&[energy, crops])
}

/// `functional_areas.csv` (UTF-8): unit names and the categories in Chinese.
fn functional_areas_csv(units: &[Unit], tables: &Tables) -> String {
    let mut text = String::from("县名,主体功能区\n");
    for r in rows(&tables.functional_areas) {
        let zh = CATEGORIES_ZH
            .iter()
            .find(|(en, _)| *en == r[1])
            .map(|(_, zh)| *zh)
            .expect("demonstration categories have Chinese names");
        text.push_str(&format!("{},{zh}\n", printed_name(name_of(units, r[0]))));
    }
    text
}

/// Each year's map as two tiles on the same lattice: the west half and the east half.
fn write_tiles(out: &Path, grid: &Grid, maps: &[Vec<u8>]) -> Result<Vec<PathBuf>, DemoError> {
    let split = grid.w / 2;
    let mut files = Vec::new();
    for (year, codes) in YEARS.iter().zip(maps) {
        for (part, (from, to)) in [("west", (0, split)), ("east", (split, grid.w))] {
            let width = to - from;
            let tile: Vec<u8> = codes
                .chunks(grid.w)
                .flat_map(|row| row[from..to].iter().copied())
                .collect();
            let path = out.join(format!("landuse_{year}_{part}.tif"));
            let description = format!(
                "{}. CLCD codes 1-9, 0 = outside the study units. Year {year}, {part} tile.",
                DEMO_NOTE.replace('—', "-")
            );
            let x_min = grid.x_min + from as f64 * grid.px;
            write_categorical(
                &path,
                &CategoricalRaster {
                    width: u32::try_from(width).expect("tile widths fit in u32"),
                    height: u32::try_from(grid.h).expect("grid heights fit in u32"),
                    codes: &tile,
                    placement: GridPlacement {
                        x_min,
                        y_max: grid.y_max,
                        pixel_width: grid.px,
                        pixel_height: grid.px,
                    },
                    crs: Crs::Epsg4326,
                    nodata: Some(0),
                    description: Some(&description),
                },
            )?;
            files.push(path);
        }
    }
    Ok(files)
}

const README: &str = "# Henan, yearbook-shaped: demonstration data

**DEMONSTRATION DATA generated by `pipeline demo-data` — not official statistics.** The
tables of `../henan/` printed as statistical yearbooks print them, for
`pipelines/henan_yearbook.yaml`, which reads them with `ingest` parameters only and reproduces
`henan_counties.yaml`'s results.

| file | shaped like a yearbook by |
|---|---|
| `economy.csv` | GBK encoding; a title line; Chinese headers with full-width brackets; county names (郑州市区 for the merged urban districts, two-character names padded with an ideographic space); GDP with thousands separators; population in 万人; shares in percent; rows by year; a footnote after an empty line |
| `yearbook.xlsx` | sheet `能源`: energy by county and year under a merged title row, footnotes below an empty row; sheet `农作物`: crop yields in t, one column per crop (小麦, 玉米, 稻谷, 大豆, 花生, 棉花, 蔬菜) |
| `functional_areas.csv` | county names and the categories in Chinese (国家级重点开发区, …) |
| `landuse_<year>_west.tif`, `landuse_<year>_east.tif` | each year's map as two tiles on one pixel lattice |

Every number is the `../henan/` table's decimal text, regrouped or with its decimal point
moved (万人 → persons, percent → fraction), so the values read back exactly.
";

/// Writes the yearbook-shaped files into `<data_dir>/henan_yearbook/`.
pub(super) fn write(
    data_dir: &Path,
    units: &[Unit],
    tables: &Tables,
    grid: &Grid,
    maps: &[Vec<u8>],
) -> Result<Vec<PathBuf>, DemoError> {
    let out = data_dir.join(FOLDER);
    std::fs::create_dir_all(&out).map_err(|source| io_err(&out, source))?;
    let mut files = write_tiles(&out, grid, maps)?;
    for (name, bytes) in [
        ("economy.csv", economy_csv(units, tables)),
        ("yearbook.xlsx", workbook_bytes(units, tables)),
        (
            "functional_areas.csv",
            functional_areas_csv(units, tables).into_bytes(),
        ),
        ("README.md", README.as_bytes().to_vec()),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|source| io_err(&path, source))?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_group_the_integer_part_in_threes() {
        assert_eq!(with_separators("5758213.8"), "5,758,213.8");
        assert_eq!(with_separators("123"), "123");
        assert_eq!(with_separators("1234"), "1,234");
        assert_eq!(
            crate::io::yearbook::plain_number(&with_separators("25417489.2")),
            "25417489.2"
        );
    }
}
