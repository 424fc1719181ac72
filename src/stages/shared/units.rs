//! Unit ids as the kinds that take one row per unit read them, and unit lists in messages.

use arrow_array::RecordBatch;

use crate::engine::stage::StageError;
use crate::table::ids;

/// The unit ids of `table`, sorted, and the row order that sorts them. Duplicates are an error.
pub(crate) fn sorted_unique_ids(
    table: &RecordBatch,
    name: &str,
    id_column: &str,
) -> Result<(Vec<String>, Vec<usize>), StageError> {
    let ids = ids(table, name, id_column)?;
    let order = crate::table::sorted_order(&ids);
    let names: Vec<String> = order.iter().map(|&i| ids[i].clone()).collect();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(
            StageError::data(format!("`{name}`: unit `{}` has more than one row", w[0]))
                .with_hint("give one row per unit (select a year with `year:` or aggregate first)"),
        );
    }
    Ok((names, order))
}

/// The first few names of a list, for messages.
pub(crate) fn preview(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(10).map(|s| format!("`{s}`")).collect();
    if names.len() > 10 {
        format!("{} and {} more", shown.join(", "), names.len() - 10)
    } else {
        shown.join(", ")
    }
}
