//! UBJSON (Universal Binary JSON, draft 12), as XGBoost writes `model.ubj`, read
//! into a `serde_json::Value` so that one reader serves both XGBoost formats.
//!
//! No maintained Rust crate reads UBJSON's optimised containers (`[$d#L…`), which
//! XGBoost uses for every array; the format is small enough to decode here.
//! Supported: every value type of the draft, containers with and without a
//! count or a type, no-op markers. Refused: non-finite floats (JSON cannot hold
//! them), nesting deeper than `MAX_DEPTH`, counts larger than the bytes left.

use anyhow::{bail, ensure, Context, Result};
use serde_json::{Map, Number, Value};

const MAX_DEPTH: usize = 64;

/// Decodes one UBJSON value that fills `bytes` (trailing no-ops aside).
pub fn parse(bytes: &[u8]) -> Result<Value> {
    let mut r = Reader { bytes, at: 0 };
    let marker = r.marker()?;
    let value = r.value(marker, 0)?;
    while r.at < bytes.len() && bytes[r.at] == b'N' {
        r.at += 1;
    }
    ensure!(
        r.at == bytes.len(),
        "{} bytes after the end of the UBJSON value",
        bytes.len() - r.at
    );
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .with_context(|| format!("UBJSON ends inside a value at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// The next type marker, skipping no-ops.
    fn marker(&mut self) -> Result<u8> {
        loop {
            match self.byte()? {
                b'N' => continue,
                m => return Ok(m),
            }
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// An integer of the type `marker` (a length or a count).
    fn int(&mut self, marker: u8) -> Result<i64> {
        Ok(match marker {
            b'i' => i8::from_be_bytes(self.array()?) as i64,
            b'U' => self.byte()? as i64,
            b'I' => i16::from_be_bytes(self.array()?) as i64,
            b'l' => i32::from_be_bytes(self.array()?) as i64,
            b'L' => i64::from_be_bytes(self.array()?),
            m => bail!(
                "UBJSON byte {}: expected an integer type, found marker {:?}",
                self.at - 1,
                m as char
            ),
        })
    }

    fn length(&mut self) -> Result<usize> {
        let m = self.marker()?;
        let n = self.int(m)?;
        usize::try_from(n).with_context(|| format!("UBJSON length {n} is negative"))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.length()?;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).context("UBJSON string is not UTF-8")
    }

    fn float(&self, v: f64) -> Result<Value> {
        Number::from_f64(v)
            .map(Value::Number)
            .with_context(|| format!("UBJSON byte {}: the float {v} is not finite", self.at))
    }

    fn value(&mut self, marker: u8, depth: usize) -> Result<Value> {
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Number(self.int(marker)?.into()),
            b'd' => {
                let v = f32::from_be_bytes(self.array()?) as f64;
                self.float(v)?
            }
            b'D' => {
                let v = f64::from_be_bytes(self.array()?);
                self.float(v)?
            }
            b'C' => Value::String((self.byte()? as char).to_string()),
            b'S' => Value::String(self.string()?),
            // High-precision numbers are decimal text.
            b'H' => {
                let s = self.string()?;
                Value::Number(
                    s.parse::<Number>()
                        .with_context(|| format!("UBJSON high-precision number {s:?}"))?,
                )
            }
            b'[' | b'{' => {
                ensure!(depth < MAX_DEPTH, "UBJSON nests deeper than {MAX_DEPTH}");
                self.container(marker == b'{', depth + 1)?
            }
            m => bail!(
                "UBJSON byte {}: unknown marker {:?}",
                self.at - 1,
                m as char
            ),
        })
    }

    /// An array or object after its opening marker: optimised (`$type`, `#count`)
    /// or closed by `]` / `}`.
    fn container(&mut self, object: bool, depth: usize) -> Result<Value> {
        let mut elem = None;
        let mut count = None;
        let mut m = self.marker()?;
        if m == b'$' {
            elem = Some(self.byte()?);
            m = self.marker()?;
            ensure!(m == b'#', "UBJSON: a typed container without a count");
        }
        if m == b'#' {
            let n = self.length()?;
            // Each element takes at least one byte unless its type says it all.
            let min = match elem {
                Some(b'Z' | b'T' | b'F' | b'N') => 0,
                _ => 1,
            };
            ensure!(
                n * min <= self.bytes.len() - self.at,
                "UBJSON count {n} is larger than the bytes left"
            );
            count = Some(n);
        }
        let mut items = vec![];
        let mut map = Map::new();
        let mut i = 0;
        loop {
            match count {
                Some(n) if i == n => break,
                Some(_) => {}
                None => {
                    if i > 0 {
                        m = self.marker()?;
                    }
                    if m == if object { b'}' } else { b']' } {
                        break;
                    }
                }
            }
            let key = if object {
                // Keys carry no `S` marker: their length comes first.
                if count.is_none() {
                    // `m` is the length's integer marker.
                    let n = usize::try_from(self.int(m)?).context("negative key length")?;
                    let s = self.take(n)?;
                    Some(String::from_utf8(s.to_vec()).context("UBJSON key is not UTF-8")?)
                } else {
                    Some(self.string()?)
                }
            } else {
                None
            };
            let marker = match (elem, count, object) {
                (Some(t), _, _) => t,
                (None, Some(_), _) | (None, None, true) => self.marker()?,
                (None, None, false) => m,
            };
            let v = self.value(marker, depth)?;
            match key {
                Some(k) => {
                    map.insert(k, v);
                }
                None => items.push(v),
            }
            i += 1;
        }
        Ok(if object {
            Value::Object(map)
        } else {
            Value::Array(items)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_optimised_containers() {
        // {"a": [1, 2.5], "b": "hi", "c": true, "d": null}
        let plain = b"{U\x01a[U\x01d\x40\x20\x00\x00]U\x01bSU\x02hiU\x01cTU\x01dZ}";
        assert_eq!(
            parse(plain).unwrap(),
            serde_json::json!({"a": [1, 2.5], "b": "hi", "c": true, "d": null})
        );
        // [$l#U\x02 <i32 7> <i32 -1>], then a counted object {"k": "x"}.
        let typed = b"[$l#U\x02\x00\x00\x00\x07\xff\xff\xff\xff";
        assert_eq!(parse(typed).unwrap(), serde_json::json!([7, -1]));
        let counted = b"{#U\x01U\x01kC\x78";
        assert_eq!(parse(counted).unwrap(), serde_json::json!({"k": "x"}));
        // No-ops between values are skipped.
        assert_eq!(parse(b"[NU\x01NU\x02]").unwrap(), serde_json::json!([1, 2]));
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        for bad in [
            &b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff"[..],
            b"{U\x05ab",
            b"[U\x01",
            b"Q",
            b"[d\x7f\xc0\x00\x00]",
            b"U\x01U\x02",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = vec![b'['; 1000];
        assert!(parse(&deep).is_err());
    }
}
