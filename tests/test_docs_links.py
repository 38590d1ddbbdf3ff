"""Every relative link of the user docs resolves: the file exists, and an
anchor names a heading of the page it points to (GitHub's slugs)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [
        ROOT / 'README.md',
        ROOT / 'benchmarks' / 'GPU_CHECK.md',
        *(ROOT / 'docs').glob('*.md'),
        *(ROOT / 'docs' / 'study').glob('*.md'),
        *(ROOT / 'configs').glob('*/README.md'),
    ]
)
LINK = re.compile(r'\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```.*?^```', re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(page: Path) -> set:
    text = FENCE.sub('', page.read_text())
    seen, out = {}, set()
    for m in re.finditer(r'^#{1,6} (.+)$', text, re.M):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f'{base}-{n}')
    return out


def links(page: Path) -> list:
    text = FENCE.sub('', page.read_text())
    return [
        m.group(1)
        for m in LINK.finditer(text)
        if not re.match(r'[a-z]+:', m.group(1))
    ]


def test_slug_matches_github():
    assert slug('The headline study: `cpu-noise20`, 10 seeds') == (
        'the-headline-study-cpu-noise20-10-seeds'
    )


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    bad = []
    for link in links(page):
        path, _, anchor = link.partition('#')
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            bad.append(f'{link}: no such file')
        elif anchor and target.suffix == '.md' and target.exists():
            if anchor not in anchors(target):
                bad.append(f'{link}: no heading #{anchor}')
    assert not bad, f'{page.relative_to(ROOT)}: ' + '; '.join(bad)
