//! A whitespace-and-comment minifier for the function's fixed JavaScript:
//! the CloudFront Functions quota is 10 KB, and the template stays
//! readable in the repository. It knows only what it must not break:
//! string literals (`'`, `"`, template literals copied as they are),
//! regular expression literals (a `/` where an operand is expected;
//! character classes and escapes included), and line and block comments.
//! Outside those, whitespace is dropped except where two tokens would
//! merge (`var x`, `a - -b`, `a + +b`).
//!
//! It does not rename, reorder or insert semicolons: the template ends
//! every statement with `;` (a missing one shows as a syntax error in the
//! Node tests, which parse and run the minified function).

/// Characters that can continue an identifier, keyword or number.
fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Whether a `/` after `prev` (the last significant output) starts a
/// regular expression rather than a division.
fn regex_allowed(out: &str) -> bool {
    let t = out.trim_end();
    match t.chars().last() {
        None => true,
        Some(c) if "(,=:[!&|?{};+-*%<>~^".contains(c) => true,
        Some(c) if word(c) => {
            let start = t.rfind(|c: char| !word(c)).map_or(0, |i| i + 1);
            matches!(&t[start..], "return" | "typeof" | "in" | "of" | "case" | "do" | "else" | "void" | "delete" | "new" | "instanceof")
        }
        _ => false,
    }
}

/// Copies a quoted string or template literal starting at `chars[i]`
/// (the quote) to `out`; returns the index after its closing quote.
fn copy_quoted(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    let quote = chars[i];
    out.push(quote);
    i += 1;
    while let Some(&c) = chars.get(i) {
        out.push(c);
        i += 1;
        if c == '\\' {
            if let Some(&n) = chars.get(i) {
                out.push(n);
                i += 1;
            }
        } else if c == quote {
            return Ok(i);
        } else if c == '\n' && quote != '`' {
            break;
        }
    }
    Err(format!("unterminated string literal ({quote}) at character {i}"))
}

/// Copies a regular expression literal starting at `chars[i]` (the `/`).
fn copy_regex(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    out.push('/');
    i += 1;
    let mut class = false;
    while let Some(&c) = chars.get(i) {
        out.push(c);
        i += 1;
        match c {
            '\\' => {
                if let Some(&n) = chars.get(i) {
                    out.push(n);
                    i += 1;
                }
            }
            '[' => class = true,
            ']' => class = false,
            '/' if !class => return Ok(i),
            '\n' => break,
            _ => {}
        }
    }
    Err(format!("unterminated regular expression at character {i}"))
}

/// `js` without comments and without whitespace that separates nothing.
/// Fails on an unterminated string, regular expression or comment.
pub fn minify(js: &str) -> Result<String, String> {
    let chars: Vec<char> = js.chars().collect();
    let mut out = String::with_capacity(js.len());
    let mut i = 0;
    // Whitespace (or a comment) was skipped since the last output.
    let mut gap = false;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            gap = true;
            i += 1;
            continue;
        }
        if c == '/' && next == Some('/') {
            while chars.get(i).is_some_and(|c| *c != '\n') {
                i += 1;
            }
            gap = true;
            continue;
        }
        if c == '/' && next == Some('*') {
            let end = chars[i + 2..].windows(2).position(|w| w == ['*', '/']);
            let Some(end) = end else { return Err(format!("unterminated comment at character {i}")) };
            i += 2 + end + 2;
            gap = true;
            continue;
        }
        if gap {
            let prev = out.chars().last();
            let merge = prev.is_some_and(|p| (word(p) && word(c)) || (p == c && (c == '+' || c == '-')));
            if merge {
                out.push(' ');
            }
            gap = false;
        }
        i = match c {
            '\'' | '"' | '`' => copy_quoted(&chars, i, &mut out)?,
            '/' if regex_allowed(&out) => copy_regex(&chars, i, &mut out)?,
            _ => {
                out.push(c);
                i + 1
            }
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn whitespace_and_comments_go_tokens_stay_apart() {
        let js = "// a comment\nvar a = 1, b = 'x  y' ; /* block\n comment */ function f ( x ) {\n    return x - -a + +b;\n}\n";
        assert_eq!(minify(js).unwrap(), "var a=1,b='x  y';function f(x){return x- -a+ +b;}");
    }

    #[test]
    fn strings_keep_what_looks_like_comments_and_escapes() {
        let js = r#"var s = 'a // b', t = "c /* d */", u = 'it\'s  \\', v = `x  // y`;"#;
        assert_eq!(minify(js).unwrap(), r#"var s='a // b',t="c /* d */",u='it\'s  \\',v=`x  // y`;"#);
    }

    #[test]
    fn regular_expressions_are_copied_whole() {
        let js = r"if (/[\/?](\.|%2e){1,2}([\/?]|$)/i.test(s)) return /[^\x20-\x7e] /.test(p);";
        assert_eq!(minify(js).unwrap(), r"if(/[\/?](\.|%2e){1,2}([\/?]|$)/i.test(s))return/[^\x20-\x7e] /.test(p);");
        // A class holding '/', and a regex after `return` and `=`.
        assert_eq!(minify("x = /[/ ]+/g;").unwrap(), "x=/[/ ]+/g;");
        // Division is not a regex.
        assert_eq!(minify("var h = a / 2 / b;").unwrap(), "var h=a/2/b;");
        assert_eq!(minify("f(x) / 2 // half\n;").unwrap(), "f(x)/2;");
    }

    #[test]
    fn unterminated_input_is_an_error() {
        for bad in ["var s = 'abc", "x = /abc", "/* open", "var s = 'a\nb'"] {
            assert!(minify(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_template_shrinks_and_keeps_its_strings() {
        let src = include_str!("function.js");
        let min = minify(src).unwrap();
        assert!(min.len() * 10 < src.len() * 7, "{} -> {} bytes", src.len(), min.len());
        assert!(!min.contains("\n") && !min.contains("  "), "{min}");
        assert!(min.contains("'request target: path: segment at byte '"));
        assert!(min.contains("async function handler(event){"));
    }
}
