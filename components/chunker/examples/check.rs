fn main() {
    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let pages: Vec<chunker::PageText> = text
        .split('\u{c}')
        .enumerate()
        .map(|(i, t)| chunker::PageText {
            number: i as u32 + 1,
            offset: 0,
            text: t.to_string(),
        })
        .collect();
    for (i, c) in chunker::chunk(&pages, 512, 64, chunker::Unit::Tokens)
        .unwrap()
        .iter()
        .enumerate()
        .skip(13)
        .take(4)
    {
        println!(
            "{i} {} {} {} {} {:?}",
            c.first_page,
            c.start,
            c.last_page,
            c.end,
            &c.text[..20]
        );
    }
}
