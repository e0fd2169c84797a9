//! MITgcm's `available_diagnostics.log`: point type, vertical dimension, units and
//! vector mate of each diagnostic.

use std::collections::HashMap;

use super::Diagnostic;
use crate::llc::PointType;

/// Parses MITgcm's `available_diagnostics.log` the way xmitgcm does: the second
/// character of the code gives the horizontal point, the ninth and tenth the vertical.
pub fn parse_diagnostics(text: &str) -> HashMap<String, Diagnostic> {
    let mut by_id = HashMap::new();
    let mut out = HashMap::new();
    let mut mates = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').collect();
        if cols.len() != 7 || cols[0].trim() == "Num" {
            continue;
        }
        let (Ok(id), Ok(levs)) = (cols[0].trim().parse::<u32>(), cols[2].trim().parse::<u32>())
        else {
            continue;
        };
        let name = cols[1].trim().to_string();
        let code: Vec<char> = cols[4].chars().collect();
        if code.len() < 10 {
            continue;
        }
        let point = match code[1] {
            'U' => PointType::U,
            'V' => PointType::V,
            'Z' => PointType::G,
            _ => PointType::C,
        };
        let vertical = if code[9] == '1' && levs == 1 {
            None
        } else {
            match code[8] {
                'U' => Some("k_u"),
                'L' => Some("k_l"),
                _ => Some("k"),
            }
        };
        by_id.insert(id, name.clone());
        if let Ok(m) = cols[3].trim().parse::<u32>() {
            mates.push((name.clone(), m));
        }
        out.insert(
            name,
            Diagnostic {
                point,
                vertical,
                long_name: cols[6].trim().to_string(),
                units: cols[5].trim().to_string(),
                mate: None,
            },
        );
    }
    for (name, id) in mates {
        if let (Some(mate), Some(d)) = (by_id.get(&id).cloned(), out.get_mut(&name)) {
            d.mate = Some(mate);
        }
    }
    out
}
