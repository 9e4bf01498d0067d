//! The mutation engine: a seeded PRNG and a handful of byte- and token-level edits, stacked
//! one to four at a time on an input from the pool, the way AFL's "havoc" stage does.

/// Longest input the engine makes: larger than every seed, small enough that an input is
/// parsed in milliseconds, and the bound on what a parser may allocate scales from it.
pub const MAX_INPUT: usize = 64 << 10;

/// SplitMix64: tiny, seedable, and good enough to pick mutations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes that sit on boundaries: zero, all ones, the sign bit, its neighbour.
const INTERESTING_BYTES: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];

/// Integers at the edges of sizes and counts, where length arithmetic overflows or wraps.
const INTERESTING_WORDS: [u64; 14] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Numbers written as text at the edges of parsers of numbers (and of f32 and u32).
const INTERESTING_NUMBERS: [&str; 16] = [
    "0",
    "-0",
    "-1",
    "1",
    "255",
    "256",
    "65536",
    "2147483648",
    "4294967296",
    "18446744073709551616",
    "1e39",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "1e-320",
];

/// A mutated copy of `input`: one to four edits, some using `pool` (splicing) and `dict`
/// (tokens of the target's format). `text` adds edits that work on numbers and lines.
pub fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>], dict: &[Vec<u8>], text: bool) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let kinds = if text { 12 } else { 9 };
        match rng.below(kinds) {
            0 => flip_bit(rng, &mut out),
            1 => {
                let b = *rng.pick(&INTERESTING_BYTES);
                set_byte(rng, &mut out, b)
            }
            2 => {
                let b = rng.next_u64() as u8;
                set_byte(rng, &mut out, b)
            }
            3 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                insert(rng, &mut out, &bytes)
            }
            4 => delete_range(rng, &mut out),
            5 => duplicate_range(rng, &mut out),
            6 => overwrite_word(rng, &mut out),
            7 => splice(rng, &mut out, pool),
            8 if !dict.is_empty() => {
                let token = rng.pick(dict).clone();
                insert(rng, &mut out, &token)
            }
            9 => replace_number(rng, &mut out),
            10 => line_edit(rng, &mut out),
            11 if !dict.is_empty() => {
                let token = rng.pick(dict).clone();
                replace_token(rng, &mut out, &token)
            }
            _ => flip_bit(rng, &mut out),
        }
    }
    out.truncate(MAX_INPUT);
    out
}

fn flip_bit(rng: &mut Rng, v: &mut [u8]) {
    if !v.is_empty() {
        let i = rng.below(v.len());
        v[i] ^= 1 << rng.below(8);
    }
}

fn set_byte(rng: &mut Rng, v: &mut [u8], b: u8) {
    if !v.is_empty() {
        let i = rng.below(v.len());
        v[i] = b;
    }
}

fn insert(rng: &mut Rng, v: &mut Vec<u8>, bytes: &[u8]) {
    let at = rng.below(v.len() + 1);
    v.splice(at..at, bytes.iter().copied());
}

/// A range of up to 1/4 of the input, at most 256 bytes: small edits keep most of the structure.
fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = rng.below(len);
    let n = 1 + rng.below((len - start).clamp(1, 256));
    (start, (start + n).min(len))
}

fn delete_range(rng: &mut Rng, v: &mut Vec<u8>) {
    if !v.is_empty() {
        let (a, b) = range(rng, v.len());
        v.drain(a..b);
    }
}

fn duplicate_range(rng: &mut Rng, v: &mut Vec<u8>) {
    if !v.is_empty() {
        let (a, b) = range(rng, v.len());
        let copy = v[a..b].to_vec();
        insert(rng, v, &copy);
    }
}

fn overwrite_word(rng: &mut Rng, v: &mut [u8]) {
    let w = *rng.pick(&INTERESTING_WORDS);
    let little = rng.below(2) == 0;
    // A 4-byte word takes the value's low 32 bits (u32::MAX from u64::MAX, 0 from 1 << 32).
    let bytes: Vec<u8> = match (rng.below(2) == 0, little) {
        (true, true) => (w as u32).to_le_bytes().to_vec(),
        (true, false) => (w as u32).to_be_bytes().to_vec(),
        (false, true) => w.to_le_bytes().to_vec(),
        (false, false) => w.to_be_bytes().to_vec(),
    };
    if v.len() < bytes.len() {
        return;
    }
    let at = rng.below(v.len() - bytes.len() + 1);
    v[at..at + bytes.len()].copy_from_slice(&bytes);
}

/// The head of this input and the tail of another one.
fn splice(rng: &mut Rng, v: &mut Vec<u8>, pool: &[Vec<u8>]) {
    if pool.is_empty() {
        return;
    }
    let other = rng.pick(pool);
    let cut = rng.below(v.len() + 1);
    let from = rng.below(other.len() + 1);
    v.truncate(cut);
    v.extend_from_slice(&other[from..]);
}

/// Replaces one run of digits (with its sign, point and exponent) by an edge-case number.
fn replace_number(rng: &mut Rng, v: &mut Vec<u8>) {
    // A number starts at a digit that does not continue a word, a fraction or an exponent.
    let continues = |i: usize| {
        i > 0
            && (v[i - 1].is_ascii_alphanumeric()
                || v[i - 1] == b'.'
                || matches!(v[i - 1], b'-' | b'+') && i > 1 && matches!(v[i - 2], b'e' | b'E'))
    };
    let starts: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_ascii_digit() && !continues(i)).collect();
    if starts.is_empty() {
        return;
    }
    let a = *rng.pick(&starts);
    let a = if a > 0 && v[a - 1] == b'-' { a - 1 } else { a };
    let b = (a + 1..v.len()).find(|&i| !(v[i].is_ascii_digit() || matches!(v[i], b'.' | b'e' | b'E' | b'+' | b'-'))).unwrap_or(v.len());
    let number = rng.pick(&INTERESTING_NUMBERS).as_bytes();
    v.splice(a..b, number.iter().copied());
}

/// Deletes, duplicates or swaps whole lines.
fn line_edit(rng: &mut Rng, v: &mut Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = v.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
    let i = rng.below(lines.len());
    match rng.below(3) {
        0 if lines.len() > 1 => {
            lines.remove(i);
        }
        1 => {
            let copy = lines[i].clone();
            lines.insert(rng.below(lines.len() + 1), copy);
        }
        _ => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
    }
    *v = lines.join(&b'\n');
}

/// Overwrites a short range with a token of the format.
fn replace_token(rng: &mut Rng, v: &mut Vec<u8>, token: &[u8]) {
    if v.is_empty() {
        v.extend_from_slice(token);
        return;
    }
    let (a, b) = range(rng, v.len());
    let b = b.min(a + token.len().max(1));
    v.splice(a..b, token.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_mutations_and_bounded_length() {
        let input = b"{\"drawing\":[[[0,10,20],[0,5,0]]]}".to_vec();
        let pool = vec![input.clone(), vec![0xff; 1000]];
        let dict = vec![b"<object>".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200).map(|_| mutate(&mut rng, &input, &pool, &dict, true)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let outs = run(7);
        assert!(outs.iter().all(|o| o.len() <= MAX_INPUT));
        assert!(outs.iter().filter(|o| **o != input).count() > 150, "most outputs differ from the input");
    }

    #[test]
    fn numbers_are_replaced_whole() {
        let mut rng = Rng::new(1);
        let mut v = b"a=-12.5e3,".to_vec();
        replace_number(&mut rng, &mut v);
        let s = String::from_utf8(v).unwrap();
        assert!(s.starts_with("a=") && s.ends_with(','), "{s}");
        assert!(INTERESTING_NUMBERS.contains(&&s[2..s.len() - 1]), "{s}");
    }

    #[test]
    fn words_land_inside_the_input() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let mut v = vec![0x55u8; 9];
            overwrite_word(&mut rng, &mut v);
            assert_eq!(v.len(), 9);
        }
        let mut short = vec![1u8, 2, 3];
        overwrite_word(&mut rng, &mut short);
        assert_eq!(short, vec![1, 2, 3], "a word does not fit: unchanged");
    }
}
