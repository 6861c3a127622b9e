"""The documentation's links: every relative link in README.md, docs/*.md and benchmarks/*.md points at a file
that exists (and, with an `#anchor`, at a heading of that file), every page in docs/ is linked from README.md, and
no page names a file outside the repository, which its users do not have.
"""
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / 'README.md', *(ROOT / 'docs').glob('*.md'), *(ROOT / 'benchmarks').glob('*.md')])

# [text](target) or ![alt](target), the target up to the first space (an optional "title" follows it).
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)')
FENCE = re.compile(r'^(```|~~~)')
HEADING = re.compile(r'^#{1,6}\s+(.*?)\s*#*\s*$')
EXTERNAL = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')  # http:, https:, mailto:, ...


def prose_lines(path):
    """(line number, line) of a markdown file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def links(path):
    """(target, line number) of every link in a markdown file, outside code blocks and code spans."""
    found = []
    for number, line in prose_lines(path):
        for match in LINK.finditer(re.sub(r'`[^`]*`', '', line)):
            found.append((match.group(1), number))
    return found


def slug(heading):
    """GitHub's anchor for a heading: lowercase, markup and punctuation dropped except '-' and '_', spaces to '-'."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link's text only
    text = unicodedata.normalize('NFKC', text).lower().replace('`', '').replace('*', '')
    text = ''.join(c for c in text if c.isalnum() or c in ' -_')
    return text.replace(' ', '-')


def anchors(path):
    """The anchors of a markdown file's headings, with GitHub's -1, -2 ... suffixes for repeated ones."""
    seen, result = {}, set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f'{base}-{count}')
    return result


def test_pages_found():
    assert ROOT / 'README.md' in PAGES and len(PAGES) > 1


def test_slug_is_githubs():
    assert slug("VOC's train_aug from SBD") == 'vocs-train_aug-from-sbd'
    assert slug('Comparing pseudo masks, figures and the evaluation server') == \
        'comparing-pseudo-masks-figures-and-the-evaluation-server'
    assert slug('More of `run_rounds.py`') == 'more-of-run_roundspy'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    name = page.relative_to(ROOT)
    broken = []
    for target, line in links(page):
        if not target or EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition('#')
        linked = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not linked.exists():
            broken.append(f'{name}:{line}: {target} (no such file: {linked})')
            continue
        if anchor and linked.suffix == '.md' and linked.is_file() and unquote(anchor) not in anchors(linked):
            broken.append(f'{name}:{line}: {target} (no heading with anchor #{anchor} in {linked.relative_to(ROOT)})')
    assert not broken, 'broken links:\n' + '\n'.join(broken)


# A path written relative to a page's folder (`../benchmarks/x.json`), in prose or in code.
UPWARD = re.compile(r'(?<![\w./-])((?:\.\./)+[\w./-]*)')


def outside_paths(page, root=ROOT):
    """The `../` paths to a file or folder (`../notes/`, `../spec.md`) that a page names and that leave the
    repository or name nothing in it: files its readers, who have the repository only, do not have. A bare
    `../name` is an example of a name (an id that would leave its folder), not a path to a document."""
    found = []
    for target in UPWARD.findall(page.read_text(encoding='utf-8')):
        rest = target.lstrip('./')
        if not ('/' in rest or '.' in rest):
            continue
        resolved = (page.parent / target.rstrip('.')).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            found.append(target)
    return found


def test_the_outside_path_check_finds_a_path_outside(tmp_path):
    docs = tmp_path / 'docs'
    docs.mkdir()
    (tmp_path / 'benchmarks').mkdir()
    page = docs / 'example.md'
    page.write_text('see ../../notes/spec.md, ../missing/x.json, ../benchmarks/ and an id like ../x\n')
    assert outside_paths(page, root=tmp_path) == ['../../notes/spec.md', '../missing/x.json']


def test_no_page_names_a_file_outside_the_repository():
    cites = {str(page.relative_to(ROOT)): outside_paths(page) for page in PAGES if outside_paths(page)}
    assert not cites, f'these pages name files outside the repository, which its users do not have: {cites}'


def test_every_doc_is_linked_from_readme():
    readme = ROOT / 'README.md'
    linked = {(readme.parent / unquote(target.partition('#')[0])).resolve()
              for target, _ in links(readme) if target and not EXTERNAL.match(target)}
    orphans = [str(doc.relative_to(ROOT)) for doc in sorted((ROOT / 'docs').iterdir())
               if doc.is_file() and doc.resolve() not in linked]
    assert not orphans, f'files in docs/ that README.md does not link to: {orphans}'
