//! The study report: one self-contained HTML page (inline SVG maps and charts, inline CSS, no
//! scripts or external resources) and GeoJSON layers for GIS users. Pure presentation: plain
//! data in, text out; the `report` stage adapts Arrow tables to it.

pub mod charts;
pub mod classing;
pub mod geojson_out;
pub mod html;
pub mod palette;
pub mod projection;
pub mod svg_map;
pub mod topology;
