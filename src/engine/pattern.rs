//! File-name patterns in declared sources: `tiles/lu_2000_*.tif` names every matching file of
//! one folder. `*` matches any run of characters and `?` one character, in the file-name
//! component only; the folder part is taken literally. Matches are sorted by name, so the list
//! (and the key built from it) does not depend on the order the file system lists them in.

use std::path::{Path, PathBuf};

use crate::engine::stage::Source;

/// Whether `text` holds a pattern character.
pub fn is_pattern(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// Whether `name` matches `pattern` (`*`: any run, `?`: one character), compared by character.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with one backtrack point: the last `*` seen and where it resumed.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The name of the `index`-th file matched by the pattern source `name`.
pub fn expanded_name(name: &str, index: usize) -> String {
    format!("{name}/{index}")
}

/// Replaces each pattern source by one source per matching file (`<name>/0`, `<name>/1`, … in
/// file-name order), resolved against `dir`. Zero matches is an error naming the pattern.
pub fn expand(dir: &Path, sources: Vec<Source>) -> Result<Vec<Source>, String> {
    let mut out = Vec::with_capacity(sources.len());
    for s in sources {
        if !s.pattern {
            out.push(s);
            continue;
        }
        let file_pattern = s
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let folder = s.path.parent().unwrap_or(Path::new(""));
        if is_pattern(&folder.to_string_lossy()) {
            return Err(format!(
                "`{}`: patterns are only allowed in the file name, not in folders",
                s.path.display()
            ));
        }
        let listing = std::fs::read_dir(dir.join(folder))
            .map_err(|e| format!("`{}`: cannot list its folder: {e}", s.path.display()))?;
        let mut names: Vec<String> = listing
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| matches(&file_pattern, f))
            .collect();
        if names.is_empty() {
            return Err(format!("`{}` matches no file", s.path.display()));
        }
        names.sort();
        out.extend(names.into_iter().enumerate().map(|(i, f)| {
            let path: PathBuf = folder.join(f);
            Source::new(expanded_name(&s.name, i), path)
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_question_mark_match_like_a_shell() {
        assert!(matches(
            "CLCD_v01_2000_*.tif",
            "CLCD_v01_2000_albert_henan.tif"
        ));
        assert!(matches("CLCD_v01_2000_*.tif", "CLCD_v01_2000_.tif"));
        assert!(!matches("CLCD_v01_2000_*.tif", "CLCD_v01_2001_henan.tif"));
        assert!(!matches(
            "CLCD_v01_2000_*.tif",
            "CLCD_v01_2000_henan.tif.aux.xml"
        ));
        assert!(matches("t_?.tif", "t_1.tif"));
        assert!(!matches("t_?.tif", "t_12.tif"));
        assert!(matches("*a*b*", "xxaybzz"));
        assert!(!matches("*a*b", "xxaybzz"));
        assert!(matches("土地_*.tif", "土地_河南.tif"));
    }

    #[test]
    fn matches_are_listed_in_name_order_and_none_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tiles")).unwrap();
        for f in ["b_2.tif", "b_1.tif", "b_10.tif", "c_1.tif"] {
            std::fs::write(dir.path().join("tiles").join(f), b"x").unwrap();
        }
        let got = expand(
            dir.path(),
            vec![
                Source::pattern("r", "tiles/b_*.tif"),
                Source::new("s", "x.csv"),
            ],
        )
        .unwrap();
        let shown: Vec<(String, String)> = got
            .iter()
            .map(|s| (s.name.clone(), s.path.display().to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                ("r/0".into(), "tiles/b_1.tif".into()),
                ("r/1".into(), "tiles/b_10.tif".into()),
                ("r/2".into(), "tiles/b_2.tif".into()),
                ("s".into(), "x.csv".into()),
            ]
        );
        let err = expand(dir.path(), vec![Source::pattern("r", "tiles/z_*.tif")]).unwrap_err();
        assert!(
            err.contains("tiles/z_*.tif") && err.contains("matches no file"),
            "{err}"
        );
    }
}
