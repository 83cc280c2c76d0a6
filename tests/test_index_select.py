"""Parsing index pages and choosing files, without sockets."""

import contextlib
import json
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from segfetch.wheels.index import IndexFile, IndexPageError, parse_page, project_url
from segfetch.wheels.requirements import Choosing, RequirementSet
from segfetch.wheels.select import NoMatch, choose
from segfetch.wheels.target import Target
from segfetch.wheels.wanted import Wanted

SHA = "c" * 64
PAGE = "https://idx.example/simple/alpha/"
JSON = "application/vnd.pypi.simple.v1+json"


def wanted(text: str, hashes: frozenset[str] = frozenset()) -> Wanted:
    rs = RequirementSet()
    rs.add_string(text)
    return Wanted(rs.wanted[0].req, hashes)


TARGET = Target(
    Version("3.11.7"),
    ("cp311-cp311-manylinux_2_17_x86_64", "cp311-abi3-manylinux_2_17_x86_64", "py3-none-any"),
    {},
)


def f(
    name: str,
    *,
    sha256: str | None = None,
    requires_python: str | None = None,
    yanked: str | None = None,
) -> IndexFile:
    url = "https://files.example/" + name
    return IndexFile(name, url, sha256=sha256, requires_python=requires_python, yanked=yanked)


def test_json_page() -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "name": "alpha",
            "files": [
                {
                    "filename": "alpha-1.0-py3-none-any.whl",
                    "url": "../../files/alpha-1.0-py3-none-any.whl",
                    "hashes": {"sha256": SHA.upper()},
                    "requires-python": ">=3.8",
                    "yanked": "broken",
                    "size": 1234,
                    "core-metadata": {"sha256": SHA},
                },
                {"filename": "alpha-0.9.tar.gz", "url": "https://f.example/a.tgz", "hashes": {}},
            ],
        }
    ).encode()
    files = parse_page(body, JSON, PAGE)
    assert files[0] == IndexFile(
        "alpha-1.0-py3-none-any.whl",
        "https://idx.example/files/alpha-1.0-py3-none-any.whl",
        SHA,
        ">=3.8",
        "broken",
        1234,
        True,
        SHA,
    )
    assert files[1].sha256 is None and files[1].yanked is None and not files[1].metadata


def test_html_page() -> None:
    body = f"""<!DOCTYPE html><html><body>
    <a href="/files/alpha-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&gt;=3.8"
       data-yanked="" data-dist-info-metadata="sha256={SHA}">alpha-1.0-py3-none-any.whl</a>
    <a href="alpha-0.9.tar.gz">alpha-0.9.tar.gz</a>
    <a href="alpha-0.8.tar.gz" data-yanked>alpha-0.8.tar.gz</a>
    </body></html>""".encode()
    files = parse_page(body, "text/html; charset=utf-8", PAGE)
    assert files[2].yanked == ""  # bare: yanked (PEP 592), as uv reads it
    assert files[0].url == "https://idx.example/files/alpha-1.0-py3-none-any.whl"
    assert files[0].sha256 == SHA and files[0].requires_python == ">=3.8"
    assert files[0].yanked == "" and files[0].metadata
    assert files[1].url == PAGE + "alpha-0.9.tar.gz" and files[1].yanked is None


@pytest.mark.parametrize(
    ("name", "href", "words"),
    [
        ("../evil.whl", "x", "unsafe file name"),
        ("a/b.whl", "x", "unsafe file name"),
        ("..\\evil-1.0.tar.gz", "x", "unsafe file name"),
        ("evil\x00-1.0.zip", "x", "unsafe file name"),
        # No usable text: the name comes from the URL, decoded as pip decodes it.
        ("", "..%2F..%2Fevil-1.0-py3-none-any.whl", "unsafe file name"),
        ("evil..&gt;", "sub%5C..%5Cevil-1.0.tar.gz", "unsafe file name"),
        ("ok.whl", "http://plain.example/ok.whl", "downgrade"),
    ],
)
def test_hostile_entries_are_refused(name: str, href: str, words: str) -> None:
    body = f'<a href="{href}">{name}</a>'.encode()
    with pytest.raises(IndexPageError, match=words):
        parse_page(body, "text/html", PAGE)


def test_hostile_json_names_are_refused() -> None:
    for name in ["..", ".", "", "../alpha-1.0.tar.gz", "a\\alpha-1.0.tar.gz"]:
        body = json.dumps({"files": [{"filename": name, "url": "x.whl"}]}).encode()
        with pytest.raises(IndexPageError, match="unsafe file name"):
            parse_page(body, JSON, PAGE)


LONG = "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"


def autoindex(names: list[str]) -> bytes:
    """A page as nginx's autoindex writes it (ngx_http_autoindex_module.c): "../" first,
    hrefs percent-encoded, texts over 50 characters cut to 47 and "..&gt;", then the date
    and the size; folders end in "/"."""
    rows = ['<h1>Index of /simple/alpha/</h1><hr><pre><a href="../">../</a>']
    for name in names:
        text = name if len(name) <= 50 else name[:47] + "..&gt;"
        pad = " " * max(50 - len(name), 0)
        size = "-" if name.endswith("/") else "4567"
        rows.append(f'<a href="{quote(name)}">{text}</a>{pad} 02-Mar-2024 10:40 {size:>19}')
    head = "<html>\r\n<head><title>Index of /simple/alpha/</title></head>\r\n<body>\r\n"
    return (head + "\r\n".join(rows) + "\r\n</pre><hr></body>\r\n</html>\r\n").encode()


def test_folder_listing_page_is_read_as_pip_reads_it() -> None:
    page = autoindex(
        [
            "old/",
            "alpha-0.8+local.tar.gz",
            "alpha-0.9.tar.gz",
            "alpha-0.9.tar.gz.asc",
            "alpha-1.0-py3-none-any.whl",
            "alpha-1.0-py3-none-any.whl.metadata",
            LONG,
            "alpha-1.0..tar.gz",  # one name with no ".." part: harmless
            "README",
        ]
    )
    assert b'<a href="../">../</a>' in page and b"..&gt;</a> 02-Mar-2024" in page
    files = parse_page(page, "text/html", PAGE)
    assert [(x.filename, x.url) for x in files] == [
        ("alpha-0.8+local.tar.gz", PAGE + "alpha-0.8%2Blocal.tar.gz"),
        ("alpha-0.9.tar.gz", PAGE + "alpha-0.9.tar.gz"),
        ("alpha-1.0-py3-none-any.whl", PAGE + "alpha-1.0-py3-none-any.whl"),
        (LONG, PAGE + LONG),  # its cut text is no name: the URL's is
        ("alpha-1.0..tar.gz", PAGE + "alpha-1.0..tar.gz"),
    ]
    linux = Target(Version("3.11.7"), ("cp311-cp311-manylinux_2_17_x86_64", "py3-none-any"), {})
    assert choose(wanted("alpha==1.0"), files, linux).file.filename == LONG
    assert choose(wanted("alpha<1"), files, linux).file.filename == "alpha-0.9.tar.gz"


@pytest.mark.parametrize(
    ("body", "ctype"),
    [(b"{", JSON), (b'{"files": 3}', JSON), (b"[]", JSON), (b"<html/>", "image/png")],
)
def test_garbage_pages_are_one_clear_error(body: bytes, ctype: str) -> None:
    with pytest.raises(IndexPageError) as info:
        parse_page(body, ctype, PAGE)
    assert "\n" not in str(info.value)


@given(st.binary(max_size=300), st.sampled_from([JSON, "text/html"]))
def test_page_parser_never_crashes(body: bytes, ctype: str) -> None:
    with contextlib.suppress(IndexPageError):
        parse_page(body, ctype, PAGE)


@pytest.mark.parametrize("index", ["https://i.example/simple", "https://i.example/simple/"])
def test_names_are_normalized(index: str) -> None:
    assert project_url(index, "Foo.Bar__baz") == "https://i.example/simple/foo-bar-baz/"
    assert project_url(index, "Foo_Bar") == "https://i.example/simple/foo-bar/"


def test_json_hashes_win_over_the_url_and_are_lowercased() -> None:
    def one(hashes: dict[str, object]) -> IndexFile:
        entry = {"filename": "a-1.0.tar.gz", "url": f"a-1.0.tar.gz#sha256={SHA}", "hashes": hashes}
        return parse_page(json.dumps({"files": [entry]}).encode(), JSON, PAGE)[0]

    assert one({}).sha256 == SHA  # none in JSON: the URL's
    assert one({"sha256": "A" * 64}).sha256 == "a" * 64
    assert one({"sha256": ""}).sha256 is None  # given empty: none, not the URL's
    # A malformed sha256: that file is left out; the page, and its other files, stay.
    entries = [
        {"filename": "a-1.0.tar.gz", "url": "a.tgz", "hashes": {"sha256": 12}},
        {"filename": "a-1.1.tar.gz", "url": "b.tgz", "hashes": {"sha256": SHA}},
    ]
    [kept] = parse_page(json.dumps({"files": entries}).encode(), JSON, PAGE)
    assert kept.filename == "a-1.1.tar.gz"
    html = b'<a href="ok-1.0.whl#sha256=xyz">x</a><a href="ok-1.1.whl">y</a>'
    assert [f.filename for f in parse_page(html, "text/html", PAGE)] == ["ok-1.1.whl"]


FILES = [
    f("alpha-1.0-py3-none-any.whl"),
    f("alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
    f("alpha-1.1-cp39-cp39-win_amd64.whl"),
    f("alpha-1.1.tar.gz"),
    f("alpha-2.0-py3-none-any.whl", yanked=""),
    f("alpha-1.5-py3-none-any.whl", requires_python=">=3.12"),
    f("alpha-3.0a1-py3-none-any.whl"),
    f("beta-9.0-py3-none-any.whl"),
]


def test_newest_allowed_version_wins_with_its_sdist_if_no_wheel_fits() -> None:
    # 3.0a1 is a pre-release, 2.0 yanked, 1.5 needs Python 3.12: 1.1 has only an sdist that fits.
    assert choose(wanted("alpha"), FILES, TARGET).file.filename == "alpha-1.1.tar.gz"


def test_best_tag_of_the_version_wins() -> None:
    pick = choose(wanted("alpha==1.0"), FILES, TARGET)
    assert pick.file.filename == "alpha-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"


def test_of_equal_files_the_higher_build_then_the_last_listed_wins() -> None:
    """As pip's resolver: a build tag ranks after the tags; of files ranked alike (the same
    version on two indexes), the last one listed."""
    first, last = f("alpha-1.0-py2.py3-none-any.whl"), f("alpha-1.0-py3-none-any.whl")
    assert choose(wanted("alpha==1.0"), [first, last], TARGET).file is last
    built = f("alpha-1.0-2-py3-none-any.whl")
    assert choose(wanted("alpha==1.0"), [built, first, last], TARGET).file is built


def test_yanked_only_for_an_exact_pin_and_pre_only_when_asked() -> None:
    assert choose(wanted("alpha==2.0"), FILES, TARGET).version == Version("2.0")
    assert choose(wanted("alpha>=2"), FILES, TARGET, pre=True).version == Version("3.0a1")


def test_yanked_for_a_pin_pip_reads_as_one_and_only_where_all_left_are_yanked() -> None:
    """pip's rule (PEP 592): `==2.0.0`, `==v2.0` and `==2.0,>1` pin 2.0 as `==2.0` does; a
    yanked file is not taken where another file of the pin is not yanked."""
    for spec in ("alpha==2.0.0", "alpha==v2.0", "alpha==2.0,>1", "alpha===2.0"):
        assert choose(wanted(spec), FILES, TARGET).version == Version("2.0"), spec
    with pytest.raises(NoMatch):
        choose(wanted("alpha==2.*"), FILES, TARGET)
    files = [f("alpha-2.0-py3-none-any.whl", yanked="bad"), f("alpha-2.0.tar.gz")]
    assert choose(wanted("alpha==2.0"), files, TARGET).file.filename == "alpha-2.0.tar.gz"


def test_hash_options_filter_files() -> None:
    files = [f("alpha-1.0-py3-none-any.whl", sha256="a" * 64)]
    assert choose(wanted("alpha==1.0", frozenset({"a" * 64})), files, TARGET)
    with pytest.raises(NoMatch, match="--hash"):
        choose(wanted("alpha==1.0", frozenset({"b" * 64})), files, TARGET)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("gamma", "no files for gamma"),
        ("alpha==7", "no version of alpha matches"),
        ("beta>=9", "fits Python"),
        ("alpha==1.5", r"alpha==1.5 requires Python >=3.12 \(its Requires-Python\), not 3.11"),
        ("delta>=1", r"only sdists of delta>=1, and none is taken here \(--only-binary, or"),
    ],
)
def test_no_match_says_why(text: str, words: str) -> None:
    files = [*FILES, f("beta-9.0-cp27-cp27m-win32.whl"), f("delta-1.0.tar.gz", yanked="")]
    files = [x for x in files if x.filename != "beta-9.0-py3-none-any.whl"]
    with pytest.raises(NoMatch, match=words):
        choose(wanted(text), files, TARGET)


def test_no_binary_on_an_index_of_wheels_only_says_so() -> None:
    """--no-binary six where the index has only wheels said "the index has only sdists of
    six==1.17.0", the other way round."""
    files = [f("six-1.17.0-py2.py3-none-any.whl")]
    how = Choosing(formats=frozenset({"source"}))
    with pytest.raises(NoMatch, match=r"only wheels of six==1\.17\.0, and --no-binary refuses"):
        choose(wanted("six==1.17.0"), files, TARGET, how=how)


@given(st.text(max_size=60), st.text(max_size=20))
def test_any_file_name_is_chosen_or_refused_cleanly(filename: str, spec: str) -> None:
    """Names and specifiers straight from a hostile index never crash the choice."""
    rs = RequirementSet()
    try:
        rs.add_string("alpha" + spec)
    except Exception as exc:  # a bad requirement is the user's error, reported as one
        assert type(exc).__name__ == "RequirementError"
        return
    if not rs.wanted:  # a URL or a path ("alpha @ https://...", "alpha/"): not on an index
        return
    files = [f("alpha-1.0-py3-none-any.whl"), IndexFile(filename, "https://f.example/x")]
    with contextlib.suppress(NoMatch):
        choose(rs.wanted[0], files, TARGET)
