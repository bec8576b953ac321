//! `adhoc/media_ground_truth.csv`: the media outcomes, written the way people
//! really write CSV — quoted fields, stray spaces, blank and malformed rows,
//! other date formats, "n/a".

use super::rng::Rng;
use super::world::{World, date_string};

/// Header of the ground-truth file.
pub const HEADER: &str = "media_id,outcome,survey_score,collected_on";

/// The CSV text and the number of clean media rows in it.
pub fn ground_truth_csv(world: &World) -> (String, u64) {
    let mut out = String::from(HEADER);
    out.push('\n');
    let mut r = Rng::stream(world.seed, "adhoc", 0);
    for i in 0..world.media {
        let m = world.media(i);
        let hit = world.outcome_is_hit(&m);
        let outcome = if hit { "hit" } else { "miss" };
        let score = (5.0 + if hit { 1.8 } else { -1.5 } + 1.4 * r.normal()).clamp(0.0, 10.0);
        let collected = m.published_on + r.range(7, 120) as i32;

        // Dirt, as found in hand-maintained spreadsheets.
        if r.chance(0.02) {
            out.push_str(",,,\n"); // an empty spreadsheet row
        }
        if r.chance(0.01) {
            out.push_str("#REF!,,,\n"); // a broken formula
        }
        let id = if r.chance(0.03) { format!("\"  {} \"", m.media_id) } else { m.media_id.to_string() };
        let outcome = match r.f64() {
            x if x < 0.03 => outcome.to_uppercase(),
            x if x < 0.10 => format!("\"{outcome}\""),
            x if x < 0.12 => format!(" {outcome} "),
            _ => outcome.to_string(),
        };
        if r.chance(0.01) {
            // a row someone stopped filling in
            out.push_str(&format!("{id},{outcome}\n"));
            continue;
        }
        let score = if r.chance(0.02) { "n/a".to_string() } else { format!("{score:.1}") };
        let date = date_string(collected);
        let date = if r.chance(0.02) {
            // US-style date typed by hand
            format!("{}/{}/{}", &date[5..7], &date[8..10], &date[0..4])
        } else {
            date
        };
        out.push_str(&format!("{id},{outcome},{score},{date}\n"));
    }
    (out, world.media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_dirt_and_every_media_item() {
        let w = World::new(1.0, 42);
        let (csv, n) = ground_truth_csv(&w);
        assert_eq!(n, w.media);
        assert!(csv.starts_with(HEADER));
        assert!(csv.contains(",,,\n"));
        assert!(csv.contains('"'));
        for i in [0, w.media / 2, w.media - 1] {
            assert!(csv.contains(&(1000 + i).to_string()));
        }
    }
}
