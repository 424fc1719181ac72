//! The example report, opened in a real browser (headless Chromium): the maps must draw.
//! Without a browser the test is skipped and says so; `.ci/run` installs Debian's `chromium`
//! and sets `PIPELINE_REQUIRE_BROWSER=1`, which turns the skip into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{find_on_path, require_tool};

/// Set to `1` where the browser must be present (CI).
const REQUIRE_BROWSER: &str = "PIPELINE_REQUIRE_BROWSER";

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(find_on_path)
        .or_else(|| require_tool("chromium", REQUIRE_BROWSER))
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn the_yellow_river_report_draws_its_maps_in_a_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let report =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines/out/yellow_river/report.html");
    assert!(
        report.exists(),
        "run the example studies first (README): {} is missing",
        report.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", report.display());

    // The DOM after rendering: one path per unit on every large map; the small multiples
    // draw the units in one path per colour, every unit once.
    let dom = headless(&browser, &tmp.path().join("p1"))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    let maps: Vec<&str> = dom.split("<svg class=\"map\"").skip(1).collect();
    let large = maps.iter().filter(|m| m.contains("class=\"unit\"")).count();
    assert!(
        large >= 9,
        "expected at least the nine single-year maps, found {large}"
    );
    for map in &maps {
        let map = &map[..map.find("</svg>").unwrap()];
        let units = map.matches("class=\"unit\"").count();
        let rings_by_colour: usize = map
            .split("class=\"fill\"")
            .skip(1)
            .map(|p| p[..p.find('>').unwrap()].matches('M').count())
            .sum();
        assert!(
            units == 56 || (units == 0 && rings_by_colour >= 56),
            "every map draws all 56 units: {units} unit paths, {rings_by_colour} rings by colour"
        );
    }
    assert!(
        dom.contains("Demonstration data"),
        "the demonstration-data banner is shown"
    );

    // The pixels: the first map (carbon emission, viridis) is not blank.
    let png = tmp.path().join("report.png");
    let shot = headless(&browser, &tmp.path().join("p2"))
        .args([
            "--window-size=1400,1400",
            &format!("--screenshot={}", png.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let image = crate::png::decode(&std::fs::read(&png).unwrap());
    assert_eq!((image.width, image.height), (1400, 1400));
    // Viridis' dark end (#440154 … #3b528b): red and green low, blue well above them.
    let viridis_dark = image
        .rgb
        .iter()
        .filter(|[r, g, b]| *r < 90 && *g < 110 && *b > 70 && *b > *r + 20)
        .count();
    assert!(
        viridis_dark > 20_000,
        "only {viridis_dark} map-coloured pixels: the maps did not draw"
    );
}
