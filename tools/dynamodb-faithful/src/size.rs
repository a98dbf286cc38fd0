//! DynamoDB's item size and capacity-unit arithmetic ("Item sizes and formats" and "Read/write
//! capacity units" in the developer guide), over items in the JSON protocol's attribute-value
//! form (`{"S": "..."}`, `{"N": "12"}`, `{"M": {...}}`, ...).

use base64::Engine;
use serde_json::Value;

/// A write unit covers one write of up to 1 KB per second.
const WRITE_UNIT_BYTES: usize = 1024;
/// A read unit covers one strongly consistent read of up to 4 KB per second (two eventually
/// consistent ones).
const READ_UNIT_BYTES: usize = 4096;

/// The size DynamoDB bills for an item: the UTF-8 length of every attribute name plus the size
/// of every value.
pub(crate) fn item_size(item: &serde_json::Map<String, Value>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// The size of one attribute value. Numbers take about one byte per two significant digits plus
/// one; lists and maps take 3 bytes plus one per element; null and booleans one byte.
pub(crate) fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|typed| typed.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(text)) => text.len(),
        ("N", Value::String(number)) => number_size(number),
        ("B", Value::String(encoded)) => binary_size(encoded),
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(texts)) => texts.iter().filter_map(Value::as_str).map(str::len).sum(),
        ("NS", Value::Array(numbers)) => numbers
            .iter()
            .filter_map(Value::as_str)
            .map(number_size)
            .sum(),
        ("BS", Value::Array(binaries)) => binaries
            .iter()
            .filter_map(Value::as_str)
            .map(binary_size)
            .sum(),
        ("L", Value::Array(elements)) => {
            3 + elements
                .iter()
                .map(|element| 1 + value_size(element))
                .sum::<usize>()
        }
        ("M", Value::Object(entries)) => {
            3 + entries
                .iter()
                .map(|(name, element)| 1 + name.len() + value_size(element))
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn number_size(number: &str) -> usize {
    let digits: String = number
        .chars()
        .take_while(|character| *character != 'e' && *character != 'E')
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

fn binary_size(encoded: &str) -> usize {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_or(encoded.len(), |bytes| bytes.len())
}

/// `Ord::max` is not a `const fn`.
const fn max_one(size: usize) -> usize {
    if size == 0 {
        1
    } else {
        size
    }
}

/// Write units for writing an item of `size` bytes (at least one), doubled in a transaction.
pub const fn write_units(size: usize, transactional: bool) -> f64 {
    let units = max_one(size).div_ceil(WRITE_UNIT_BYTES) as f64;
    if transactional {
        units * 2.0
    } else {
        units
    }
}

/// Read units for reading an item of `size` bytes: one per 4 KB strongly consistent, half that
/// eventually consistent, double in a transaction.
pub const fn read_units(size: usize, consistent: bool, transactional: bool) -> f64 {
    let units = max_one(size).div_ceil(READ_UNIT_BYTES) as f64;
    if transactional {
        units * 2.0
    } else if consistent {
        units
    } else {
        units / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_follow_the_developer_guide() {
        let item = json!({
            "pk": {"S": "USER#user-1"},          // 2 + 11
            "balance": {"N": "1000000"},         // 7 + (1 significant digit -> 1) + 1
            "ok": {"BOOL": true},                // 2 + 1
            "lines": {"L": [{"S": "ab"}]},       // 5 + 3 + 1 + 2
            "m": {"M": {"k": {"N": "12"}}},      // 1 + 3 + 1 + 1 + 2
        });
        let item = item.as_object().unwrap();
        assert_eq!(item_size(item), 13 + 9 + 3 + 11 + 8);
        assert_eq!(number_size("123.45"), 4);
        assert_eq!(number_size("-0.0012"), 2);
    }

    #[test]
    fn units_round_up_and_transactions_cost_double() {
        assert_eq!(write_units(1, false), 1.0);
        assert_eq!(write_units(1024, false), 1.0);
        assert_eq!(write_units(1025, false), 2.0);
        assert_eq!(write_units(100, true), 2.0);
        assert_eq!(read_units(4096, true, false), 1.0);
        assert_eq!(read_units(100, false, false), 0.5);
        assert_eq!(read_units(5000, true, true), 4.0);
    }
}
