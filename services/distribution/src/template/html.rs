//! The text body of an email that has only an HTML one: tags dropped (with the content of
//! `script`, `style` and `head`), common entities decoded, blocks and `<br>` as line breaks,
//! list items as `- item`, and links as `text (url)`. Deliberately small: email HTML is
//! written by template authors, and a full HTML parser is more than a text fallback needs.

/// Elements whose content is not text.
const HIDDEN: [&str; 5] = ["script", "style", "head", "title", "template"];

/// Elements that start and end a paragraph.
const BLOCKS: [&str; 20] = [
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "tr",
    "ul",
    "ol",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "hr",
    "pre",
    "address",
];

/// Plain text from `html`.
pub fn html_to_text(html: &str) -> String {
    let mut out = Output::default();
    let mut links: Vec<(String, usize)> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.text(&decode_entities(&rest[..start]));
        rest = &rest[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(tag) = Tag::parse(rest) else {
            // A lone `<` is text.
            out.text("<");
            rest = &rest[1..];
            continue;
        };
        rest = &rest[tag.length..];
        if !tag.closing && HIDDEN.contains(&tag.name.as_str()) {
            rest = skip_element(rest, &tag.name);
            continue;
        }
        match tag.name.as_str() {
            "br" => out.line_break(1),
            "li" if !tag.closing => {
                out.line_break(1);
                out.word("- ");
            }
            // Cells side by side stay apart.
            "td" | "th" if tag.closing => out.text(" "),
            "a" if !tag.closing => links.push((tag.href.unwrap_or_default(), out.text.len())),
            "a" => {
                if let Some((href, start)) = links.pop() {
                    let label = out.text.get(start..).unwrap_or_default().trim().to_owned();
                    if shows_link(&href, &label) {
                        out.text(" ");
                        out.word(&format!("({href})"));
                    }
                }
            }
            name if BLOCKS.contains(&name) => out.line_break(2),
            _ => {}
        }
    }
    out.text(&decode_entities(rest));
    out.text
}

/// Whether a link's address adds anything to its label.
fn shows_link(href: &str, label: &str) -> bool {
    !href.is_empty()
        && !href.starts_with('#')
        && !href.starts_with("javascript:")
        && href != label
        && href.strip_prefix("mailto:") != Some(label)
        && href.strip_prefix("tel:") != Some(label)
}

/// What follows the end of the element `name` (everything when it never ends).
fn skip_element<'a>(rest: &'a str, name: &str) -> &'a str {
    let closing = format!("</{name}");
    let lower = rest.to_ascii_lowercase();
    match lower.find(&closing) {
        Some(at) => {
            let after = &rest[at..];
            after.find('>').map_or("", |end| &after[end + 1..])
        }
        None => "",
    }
}

/// Text being assembled: runs of whitespace become one space, line breaks are held until
/// more text comes so that none trail.
#[derive(Default)]
struct Output {
    text: String,
    space: bool,
    breaks: usize,
}

impl Output {
    fn text(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_whitespace() {
                self.space = true;
            } else {
                self.flush();
                self.text.push(c);
            }
        }
    }

    /// Appends `word` as is, spaces included.
    fn word(&mut self, word: &str) {
        self.flush();
        self.text.push_str(word);
    }

    fn flush(&mut self) {
        if self.text.is_empty() {
            // Nothing leads the text.
        } else if self.breaks > 0 {
            while self.text.ends_with(' ') {
                self.text.pop();
            }
            for _ in 0..self.breaks {
                self.text.push('\n');
            }
        } else if self.space && !self.text.ends_with([' ', '\n']) {
            self.text.push(' ');
        }
        self.space = false;
        self.breaks = 0;
    }

    fn line_break(&mut self, count: usize) {
        // `<br><br>` is an empty line; a block after a block is still one empty line.
        self.breaks = if count == 1 {
            self.breaks + 1
        } else {
            self.breaks.max(count)
        }
        .min(2);
        self.space = false;
    }
}

/// One tag: its lower-case name, whether it closes, its `href`, and its length in the source.
struct Tag {
    name: String,
    closing: bool,
    href: Option<String>,
    length: usize,
}

impl Tag {
    /// `source` starts with `<`.
    fn parse(source: &str) -> Option<Tag> {
        let body = &source[1..];
        let (closing, body) = match body.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, body),
        };
        let name_length = body
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(body.len());
        if name_length == 0 {
            // `<!DOCTYPE …>` and `<?xml …>` are dropped; anything else is text.
            if body.starts_with(['!', '?']) {
                let end = source.find('>')?;
                return Some(Tag {
                    name: String::new(),
                    closing: false,
                    href: None,
                    length: end + 1,
                });
            }
            return None;
        }
        let name = body[..name_length].to_ascii_lowercase();
        // The tag ends at the first `>` outside quotes.
        let mut quote = None;
        let mut end = None;
        for (at, c) in source.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if q == c => quote = None,
                (None, '>') => {
                    end = Some(at);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        let attributes = &body[name_length..end - 1 - usize::from(closing)];
        Some(Tag {
            href: (name == "a")
                .then(|| attribute(attributes, "href"))
                .flatten(),
            name,
            closing,
            length: end + 1,
        })
    }
}

/// The decoded value of attribute `wanted` in `attributes` (`a="1" b='2' c=3 d`).
fn attribute(attributes: &str, wanted: &str) -> Option<String> {
    let mut rest = attributes.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let mut value = "";
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (found, remaining) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    let close = inner.find(q).unwrap_or(inner.len());
                    (&inner[..close], inner.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let close = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..close], &after[close..])
                }
            };
            value = found;
            rest = remaining.trim_start();
        } else if name.is_empty() {
            // A stray `/` or the like.
            rest = rest.get(1..).unwrap_or("").trim_start();
        }
        if name.eq_ignore_ascii_case(wanted) {
            return Some(decode_entities(value.trim()).into_owned());
        }
    }
    None
}

/// `&amp;`, `&#233;`, `&#xE9;` and the other common entities decoded; unknown ones kept.
pub fn decode_entities(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('&') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| entity(&rest[1..end]).map(|c| (c, end + 1)));
        match decoded {
            Some((c, length)) => {
                out.push(c);
                rest = &rest[length..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "deg" => '°',
        "middot" => '·',
        "bull" => '•',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "times" => '×',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_breaks_and_whitespace() {
        let html = "<html><head><title>T</title><style>p { color: red }</style></head>\
                    <body><h1>Hello   Ada</h1>\n<p>Your order\n  has <b>shipped</b>.</p>\
                    <p>Line one<br>Line two<br/>Line three</p></body></html>";
        assert_eq!(
            html_to_text(html),
            "Hello Ada\n\nYour order has shipped.\n\nLine one\nLine two\nLine three"
        );
    }

    #[test]
    fn scripts_and_comments_are_dropped() {
        let html = "<p>a<script type=\"text/javascript\">if (x < 1) { alert('<p>') }</script>b\
                    <!-- hidden <p> --> c</p><SCRIPT>x</SCRIPT>";
        assert_eq!(html_to_text(html), "ab c");
    }

    #[test]
    fn entities() {
        assert_eq!(
            html_to_text(
                "Fish &amp; chips &lt;3 &quot;x&quot; &#233;t&#xE9; &euro;5 &bogus; & more"
            ),
            "Fish & chips <3 \"x\" été €5 &bogus; & more"
        );
        assert_eq!(decode_entities("&#0;&#x110000;"), "&#0;&#x110000;");
    }

    #[test]
    fn lists_and_links() {
        let html = "<p>Items:</p><ul><li>One</li><li>Two</li></ul>\
                    <p><a href=\"https://x.test/a?b=1&amp;c=2\">Track it</a>, \
                    <a href='https://x.test'>https://x.test</a>, \
                    <a href=mailto:help@x.test>help@x.test</a>, <a href=\"#top\">top</a></p>";
        assert_eq!(
            html_to_text(html),
            "Items:\n\n- One\n- Two\n\nTrack it (https://x.test/a?b=1&c=2), https://x.test, \
             help@x.test, top"
        );
    }

    #[test]
    fn table_cells_stay_apart() {
        let html = "<table><tr><td>Total</td><td>12 &euro;</td></tr><tr><th>VAT</th><th>2</th></tr></table>";
        assert_eq!(html_to_text(html), "Total 12 €\n\nVAT 2");
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for html in [
            "<",
            "a < b",
            "<p",
            "<a href=\"x",
            "</",
            "<!--",
            "<>",
            "<é>",
            "&",
            "&#;",
        ] {
            let _ = html_to_text(html);
        }
        assert_eq!(html_to_text("a < b and c > d"), "a < b and c > d");
        assert_eq!(html_to_text("<script>never closed"), "");
    }
}
