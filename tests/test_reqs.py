import codecs
import locale
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segfetch.errors import RequirementError, SegfetchError, UsageError
from segfetch.wheels.requirements import ConstraintConflict, RequirementSet

H1, H2 = "a" * 64, "b" * 64


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_text(text, encoding=encoding)
    return path


def test_pinned_file_with_hashes_comments_and_continuations(tmp_path: Path) -> None:
    req = write(
        tmp_path,
        "req.txt",
        f"# pinned by pip-compile\n"
        f"alpha==1.0 \\\n    --hash=sha256:{H1} \\\n    --hash=sha256:{H2}\n"
        f"beta[fast]==2.0 ; python_version >= '3.8'  # trailing comment\n"
        f"gamma===3.0 --hash sha256:{H1.upper()}\n",
    )
    rs = RequirementSet()
    rs.add_file(req)
    assert [str(w.req) for w in rs.wanted] == [
        "alpha==1.0",
        'beta[fast]==2.0; python_version >= "3.8"',
        "gamma===3.0",
    ]
    assert rs.wanted[0].hashes == {H1, H2} and rs.wanted[2].hashes == {H1}
    assert rs.wanted[1].req.extras == {"fast"}
    assert rs.wanted[0].where == f"{req}:2"
    assert rs.fully_pinned


def test_a_comment_that_ends_in_a_backslash_takes_the_next_line_as_in_pip(
    tmp_path: Path,
) -> None:
    """pip joins lines before it removes comments: ``alpha==1.0 # pinned \\`` swallows the
    line after it (pip installs alpha alone); a line that is all comment joins nothing."""
    req = write(
        tmp_path,
        "req.txt",
        "alpha==1.0 # pinned \\\ngamma==1.0\n# a note \\\nbeta==2.0\ndel\\\nta==3\n",
    )
    rs = RequirementSet()
    rs.add_file(req)
    assert [(str(w.req), w.where) for w in rs.wanted] == [
        ("alpha==1.0", f"{req}:1"),
        ("beta==2.0", f"{req}:4"),
        ("delta==3", f"{req}:5"),
    ]


def test_ranges_and_wildcards_are_not_pinned() -> None:
    for text in ["alpha", "alpha>=1", "alpha==1.*", "alpha==1,<2"]:
        rs = RequirementSet()
        rs.add_string(text)
        assert not rs.fully_pinned, text


def test_nested_files_constraints_and_index_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_INDEX", "https://mirror.example/simple")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "base.txt", "alpha==1.0\n-c cons.txt\n")
    write(tmp_path / "sub", "cons.txt", "beta<3\n")
    top = write(
        tmp_path,
        "req.txt",
        "--index-url ${MY_INDEX}\n--extra-index-url=https://extra.example/simple\n"
        "--pre\n-r sub/base.txt\ngamma>=1\n",
    )
    rs = RequirementSet()
    rs.add_file(top)
    assert [w.req.name for w in rs.wanted] == ["alpha", "gamma"]
    assert [w.req.name for w in rs.constraints] == ["beta"]
    assert rs.index_url == "https://mirror.example/simple"
    assert rs.extra_index_urls == ["https://extra.example/simple"]
    assert rs.pre
    # A later -i replaces every index before it, extra ones included (pip's rule).
    rs.add_file(write(tmp_path, "more.txt", "-i https://other.example/simple\n"))
    assert (rs.index_url, rs.extra_index_urls) == ("https://other.example/simple", [])


def test_a_line_of_several_options_takes_them_all_as_pip(tmp_path: Path) -> None:
    top = write(
        tmp_path,
        "req.txt",
        "--prefer-binary --pre\n-i https://a.example/simple --extra-index-url=https://b.example/s"
        "\n--only-binary :all: --no-binary beta\n-r more.txt\nalpha\n",
    )
    write(tmp_path, "more.txt", "gamma\n")
    rs = RequirementSet()
    rs.add_file(top)
    assert rs.prefer_binary and rs.pre
    assert (rs.index_url, rs.extra_index_urls) == (
        "https://a.example/simple",
        ["https://b.example/s"],
    )
    assert rs.formats("beta") == {"source"} and rs.formats("alpha") == {"binary"}
    assert [w.req.name for w in rs.wanted] == ["gamma", "alpha"]
    # pip reads the file's options itself: each on a line of its own
    assert rs.file_options == [
        "--prefer-binary",
        "--pre",
        "--only-binary :all:",
        "--no-binary beta",
    ]
    # A line with -r is that file alone (its first -r), one with -e that editable: pip
    # ignores the rest of such a line, --pre included.
    rs = RequirementSet()
    rs.add_file(write(tmp_path, "top.txt", "--pre -r more.txt -c nope.txt\n-e x --pre\n"))
    assert not rs.pre and not rs.file_options and not rs.constraints
    assert [w.req.name for w in rs.wanted] == ["gamma"]
    assert rs.handed == [f"-e {Path('x').absolute()}"]
    # On one line, -i first whatever the order, then the extra indexes; one -f.
    rs = RequirementSet()
    rs.add_file(write(tmp_path, "i.txt", "--extra-index-url B -i A -i C\n-f here -f there\n"))
    assert (rs.index_url, rs.extra_index_urls, rs.find_links) == ("C", ["B"], ["here"])


def test_a_requirements_own_build_options_go_to_pip_with_it(tmp_path: Path) -> None:
    """pip reads --config-settings and --global-option on a requirement's line (for its
    build): its line goes to pip as it is (they were refused); in a constraint, as pip,
    they are not taken."""
    lines = "alpha==1 --config-settings=a=b\nbeta --global-option x --config-settings c=d\n"
    rs = RequirementSet()
    rs.add_file(write(tmp_path, "req.txt", lines))
    assert rs.handed == [
        "alpha==1 --config-settings=a=b",
        "beta --global-option x --config-settings c=d",
    ]
    assert rs.wanted == []
    with pytest.raises(UsageError, match="put --config-settings on the command line"):
        RequirementSet().add_file(
            write(tmp_path, "c.txt", "alpha==1 --config-settings=a=b\n"), constraint=True
        )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("alpha==", "not a requirement"),
        ("alpha==${SF_TEST_UNSET}", r"\(\$\{SF_TEST_UNSET\} is not set in the environment\)"),
        ("https://x.example/download?id=3", "cannot tell the project"),
        ("-c c.txt", "cannot read"),
        ("alpha==1 --hash=md5:abc", "--hash takes sha256"),
        ("alpha==1 --hash=sha256:abc", "--hash takes sha256"),
        ("alpha==1 --only-binary :all:", "put --only-binary on a line of its own"),  # pip: ignored
        ("--hash=sha256:" + "a" * 64, r"--hash goes on its requirement's line \(or a \\ after"),
        ("--use-deprecated legacy-resolver", "not supported"),
        ("-r", "needs a value"),
        ("--find-links", "needs a value"),
        ("--bogus-line", "option --bogus-line is not supported"),  # (was: "needs a value")
        ("-r missing.txt", "cannot read"),
        ("--pre alpha", "'alpha' follows an option; put a requirement on a line of its own"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, words: str) -> None:
    req = write(tmp_path, "req.txt", "ok==1\n" + text + "\n")
    with pytest.raises(UsageError, match=words) as info:
        RequirementSet().add_file(req)
    assert "\n" not in str(info.value)
    if "cannot read" not in words:
        assert f"{req}:2" in str(info.value)


def test_wrong_encoding_and_self_include(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locale, "getpreferredencoding", lambda do_setlocale=True: "UTF-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9==1\n".encode("latin-1"))
    with pytest.raises(UsageError, match="not UTF-8"):
        RequirementSet().add_file(latin)
    loop = write(tmp_path, "loop.txt", "-r loop.txt\n")
    with pytest.raises(UsageError, match="includes itself"):
        RequirementSet().add_file(loop)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    req = tmp_path / "bom.txt"
    req.write_bytes("\ufeffalpha==1\n".encode())
    rs = RequirementSet()
    rs.add_file(req)
    assert rs.wanted[0].req.name == "alpha"


# Windows editors and PowerShell's `>` write UTF-16 with a BOM; pip reads every one of these.
ENCODED = "# caf\u00e9 \u2713\nalpha==1.0 --hash=sha256:" + H1 + "\r\n-r nested.txt\n"


@pytest.mark.parametrize(
    ("codec", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-32-be", codecs.BOM_UTF32_BE),
    ],
)
def test_files_are_read_by_their_bom(tmp_path: Path, codec: str, bom: bytes) -> None:
    req = tmp_path / "req.txt"
    req.write_bytes(bom + ENCODED.encode(codec))
    (tmp_path / "nested.txt").write_bytes(bom + "beta==2.0\n".encode(codec))
    rs = RequirementSet()
    rs.add_file(req)
    assert [str(w.req) for w in rs.wanted] == ["alpha==1.0", "beta==2.0"]
    assert rs.wanted[0].hashes == {H1}
    assert rs.wanted[0].where == f"{req}:2"


def test_a_coding_line_names_the_encoding(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_bytes("# -*- coding: latin-1 -*-\n# caf\u00e9\nalpha==1\n".encode("latin-1"))
    rs = RequirementSet()
    rs.add_file(req)
    assert rs.wanted[0].req.name == "alpha"
    bad = write(tmp_path, "bad.txt", "# coding: no-such-codec\nalpha==1\n")
    with pytest.raises(UsageError, match="unknown encoding 'no-such-codec'") as info:
        RequirementSet().add_file(bad)
    assert str(info.value).startswith(f"{bad}: ")


def test_neither_utf8_nor_the_locale_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("# caf\xe9\nalpha==1\n".encode("latin-1"))
    # pip's last resort is the locale's encoding: a cp1252 file reads on a cp1252 system...
    monkeypatch.setattr(locale, "getpreferredencoding", lambda do_setlocale=True: "cp1252")
    rs = RequirementSet()
    rs.add_file(latin)
    assert rs.wanted[0].req.name == "alpha"
    # ... and is one line naming the file where the locale is UTF-8 too.
    monkeypatch.setattr(locale, "getpreferredencoding", lambda do_setlocale=True: "UTF-8")
    with pytest.raises(UsageError) as info:
        RequirementSet().add_file(latin)
    assert str(info.value) == (
        f"{latin}: not UTF-8 text (invalid continuation byte at byte 5); save it as UTF-8"
    )
    # A broken UTF-16 file (an odd byte at the end) says so, counting its BOM.
    odd = tmp_path / "odd.txt"
    odd.write_bytes(codecs.BOM_UTF16_LE + "alpha==1\n".encode("utf-16-le") + b"x")
    with pytest.raises(UsageError, match=r"not UTF-16-LE text \(truncated data at byte 20\)"):
        RequirementSet().add_file(odd)


@given(st.text(max_size=80))
def test_any_line_is_a_requirement_or_a_usage_error(line: str) -> None:
    rs = RequirementSet()
    try:
        rs._add_line(line.strip() or "x", "fuzz:1", Path("."), False, ())
    except UsageError as exc:
        assert "\n" not in str(exc)


def test_direct_urls_are_fetched_and_the_rest_handed_to_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = "https://h.example/w/sf_a-1.0-py3-none-any.whl"
    (tmp_path / "links").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "x.whl").write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # pip reads a path in a requirement file from the cwd
    req = write(
        tmp_path,
        "req.txt",
        f"sf-a[x] @ {wheel}#sha256={H1} ; python_version >= '3'\n"
        f"https://h.example/sf_b-2.0.tar.gz --hash=sha256:{H2}\n"
        "-e ./proj\n./lib/x.whl\ngit+https://g.example/x.git#egg=x\nfoo @ file:///srv/foo\n"
        "-f links\n--only-binary :all:\nalpha>=1\n",
    )
    rs = RequirementSet()
    rs.add_file(req)
    assert [str(w.req.name) for w in rs.wanted] == ["alpha"]
    assert [(w.url, w.url_sha256, w.hashes, w.filename) for w in rs.direct] == [
        (wheel, H1, frozenset(), "sf_a-1.0-py3-none-any.whl"),
        ("https://h.example/sf_b-2.0.tar.gz", None, {H2}, "sf_b-2.0.tar.gz"),
    ]
    assert rs.handed == [  # paths from the cwd, made absolute: pip is given another file
        f"-e {tmp_path / 'proj'}", f"{tmp_path / 'lib' / 'x.whl'}",
        "git+https://g.example/x.git#egg=x", "foo @ file:///srv/foo",
    ]  # fmt: skip
    assert rs.find_links == [str(tmp_path / "links")]  # beside the file, as pip finds it
    assert not rs.fully_pinned
    local = {w.url: tmp_path / w.filename for w in rs.direct}
    lines, constraints = rs.pip_lines(local)
    a_uri = (tmp_path / "sf_a-1.0-py3-none-any.whl").as_uri()
    assert lines == [
        "--only-binary :all:",
        f"--find-links {tmp_path / 'links'}",
        "alpha>=1",
        f'sf-a[x] @ {a_uri}#sha256={H1} ; python_version >= "3"',
        f"sf-b @ {(tmp_path / 'sf_b-2.0.tar.gz').as_uri()} --hash=sha256:{H2}",
        *rs.handed,
    ]
    assert constraints == []


def test_a_local_path_with_extras_is_handed_to_pip_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip install '.[dev]'` (and a wheel path with [extras]), as pip's _strip_extras reads
    it: segfetch said "'.[dev]' looks like a path; '.[dev]' does not exist", exit 1."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "x-1.0-py3-none-any.whl").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    rs = RequirementSet()
    for text in (".[dev]", "./lib/x-1.0-py3-none-any.whl[a,b] ; python_version >= '3'"):
        rs.add_string(text)
    assert rs.handed == [
        f"{tmp_path}[dev]",
        f"{tmp_path / 'lib' / 'x-1.0-py3-none-any.whl'}[a,b] ; python_version >= '3'",
    ]
    with pytest.raises(RequirementError, match=re.escape("'./nothere' does not exist")):
        rs.add_string("./nothere[dev]")


def test_a_find_links_folder_that_is_not_there_is_left_out_for_the_installer(
    tmp_path: Path,
) -> None:
    """pip ignores it with a warning (cli/reqset.py gives pip's); uv, given it in a file,
    took it for a URL and stopped: nothing installed, exit 2."""
    (tmp_path / "here").mkdir()
    rs = RequirementSet(find_links=[str(tmp_path / "nope"), str(tmp_path / "here")])
    rs.add_string("alpha")
    lines, _ = rs.pip_lines({})
    assert lines == [f"--find-links {tmp_path / 'here'}", "alpha"]


@pytest.mark.parametrize(
    ("fragment", "words"),
    [
        ("sha256=nothex", "#sha256=nothex is not a valid hash fragment; give #sha256= and 64 hex"),
        ("md5=zz", "give #md5= and 32 hex digits"),
        (f"egg=x&sha256={H1[1:]}", f"#sha256={H1[1:]} is not a valid"),
        (f"sha512={H1}", "give #sha512= and 128 hex digits"),
    ],
)
def test_a_bad_hash_fragment_is_one_line_naming_the_requirement(fragment: str, words: str) -> None:
    """pip would fail such a download; it was ignored here (fetched unchecked)."""
    url = "https://u:p@h.example/sf_a-1.0-py3-none-any.whl"
    for text in (f"sf-a @ {url}#{fragment}", f"{url}#{fragment}"):
        with pytest.raises(UsageError) as info:
            RequirementSet().add_string(text)
        assert str(info.value).startswith("command line: sf-a @ https://***@h.example/sf_a-")
        assert words in str(info.value)
    good = RequirementSet()
    good.add_string(f"sf-a @ {url}#egg=sf-a&md5={'0' * 32}&sha256={H1.upper()}")
    assert good.direct[0].url_sha256 == H1


def test_a_url_constraint_is_its_projects_page_and_a_pin_for_pip(tmp_path: Path) -> None:
    url = "https://h.example/d/sf_a-1.0-py3-none-any.whl"
    text = f"sf-a @ {url}#sha256={H1}\nsf-b @ file:///w/sf_b-2.0.tar.gz ; sys_platform == 'nt'\n"
    rs = RequirementSet()
    rs.add_file(write(tmp_path, "c.txt", text), constraint=True)
    rs.add_string("sf-a==1.0")
    # pip is told a version (it fetches nothing itself); the page holds that one file
    assert rs.pip_lines({})[1] == ["sf-a==1.0", 'sf-b==2.0 ; sys_platform == "nt"']
    linux = {"sys_platform": "linux", "python_version": "3.11"}
    (c,) = rs.linked(linux).values()  # (sf-b's marker leaves it out here)
    assert (c.filename, c.url, c.url_sha256) == ("sf_a-1.0-py3-none-any.whl", url, H1)
    assert set(rs.linked()) == {"sf-a", "sf-b"}  # (no early index page for either)
    rs.check_pins(linux)
    rs.add_string("sf-a==1.1")
    with pytest.raises(ConstraintConflict, match=r"sf-a==1\.1"):
        rs.check_pins(linux)  # (pip: ResolutionImpossible)


def test_two_pins_of_one_project_to_other_versions_stop_as_in_pip(tmp_path: Path) -> None:
    """pip's resolver stops at "beta==1.0" and "beta==1.5" (ResolutionImpossible); a pinned
    set went without it, and download wrote both files, exit 0. The same version twice, or
    one line for another Python, is no conflict."""
    linux = {"sys_platform": "linux", "python_version": "3.11", "python_full_version": "3.11.7"}
    rs = RequirementSet()
    rs.add_file(
        write(tmp_path, "r.txt", 'sf-b==1.0\nsf_b==1.0.0\nsf-b==0.9 ; python_version < "3"\n')
    )
    rs.check_pins(linux)
    rs.add_string("sf-b==1.5")
    with pytest.raises(ConstraintConflict, match=r"sf-b==1\.0 \(.*r\.txt:1\) and sf-b==1\.5"):
        rs.check_pins(linux)


@pytest.mark.parametrize(
    "url", ["git+https://h.example/sf-a.git", "https://h.example/sf-a/", "file:///w/sf-a/"]
)
def test_a_url_constraint_that_is_no_file_is_refused(tmp_path: Path, url: str) -> None:
    c = write(tmp_path, "c.txt", f"sf-a @ {url}\n")
    words = f"c.txt:1: a constraint's URL must name a wheel or sdist: {url}"
    with pytest.raises(UsageError, match=re.escape(words)):
        RequirementSet().add_file(c, constraint=True)


def test_an_editable_constraint_is_pips_error(tmp_path: Path) -> None:
    c = write(tmp_path, "c.txt", "-e ./src/sf-a\n")
    with pytest.raises(SegfetchError, match=r"c\.txt:1: editable requirements are not") as info:
        RequirementSet().add_file(c, constraint=True)
    assert info.value.exit_code == 1  # (pip's InstallationError; not a usage error's 2)


def test_a_path_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    req = write(tmp_path, "req.txt", "./no-such-project\n")
    with pytest.raises(UsageError, match="looks like a path") as info:
        RequirementSet().add_file(req)
    assert f"{req}:1" in str(info.value)


def _hash_mode(tmp_path: Path, text: str, constraints: str = "", require: bool = False) -> None:
    req = tmp_path / "req.txt"
    req.write_text(text)
    rs = RequirementSet()
    rs.add_file(req)
    if constraints:
        (tmp_path / "c.txt").write_text(constraints)
        rs.add_file(tmp_path / "c.txt", constraint=True)
    rs.require_hashes |= require
    rs.check_hashes()


@pytest.mark.parametrize(
    ("text", "constraints", "require", "names"),
    [
        # one --hash turns the mode on for the whole set, as in pip
        (f"alpha==1.0 --hash=sha256:{H1}\nbeta==2.0\n", "", False, "beta==2.0 (%s:2)"),
        (f"alpha==1.0 --hash=sha256:{H1}\nbeta>=2\n", "", False, "beta>=2 (%s:2)"),
        ("alpha\n", "", True, "alpha (%s:1)"),  # --require-hashes given
        ("--require-hashes\nalpha==1.0\n", "", False, "alpha==1.0 (%s:2)"),  # in the file
        ("alpha==1.0\n", f"alpha==1.0 --hash=sha256:{H2}\nbeta==1\n", False, None),
        (
            f"https://h.example/a-1.0-py3-none-any.whl --hash=sha256:{H1}\nb==1\n",
            "",
            False,
            "b==1 (%s:2)",
        ),
        (
            f"a @ https://h.example/a-1.0-py3-none-any.whl#sha256={H1}\nb==1 --hash=sha256:{H2}\n",
            "",
            False,
            None,
        ),
        ("alpha\nbeta>=2\n", "", False, None),  # no hash anywhere: not the mode
    ],
)
def test_hash_checking_mode_as_pip(
    tmp_path: Path, text: str, constraints: str, require: bool, names: str | None
) -> None:
    """pip's rules, checked before anything is fetched: once any requirement or constraint
    has a --hash (or --require-hashes is given), every requirement is pinned with == and
    has a hash of its own, a constraint's, or its URL's #sha256."""
    from segfetch.wheels.requirements import HashModeError

    if names is None:
        _hash_mode(tmp_path, text, constraints, require)
        return
    with pytest.raises(HashModeError) as caught:
        _hash_mode(tmp_path, text, constraints, require)
    message = str(caught.value)
    assert names % (tmp_path / "req.txt") in message and "\n" not in message
    assert caught.value.exit_code == 1  # as pip's


def test_hash_checking_mode_refuses_an_editable(tmp_path: Path) -> None:
    from segfetch.wheels.requirements import HashModeError

    rs = RequirementSet(require_hashes=True)
    rs.add_editable(str(tmp_path))
    with pytest.raises(HashModeError, match="no single file to hash"):
        rs.check_hashes()


def test_hash_checking_mode_skips_a_line_whose_marker_does_not_hold(tmp_path: Path) -> None:
    """A poetry export's hashed lock with one unhashed line for another Python: pip skips
    it (segfetch refused the set, exit 1). Its marker is judged once the target is known."""
    from segfetch.wheels.requirements import HashModeError

    lock = tmp_path / "req.txt"
    lock.write_text(
        f"a==1.0 --hash=sha256:{'a' * 64}\n"
        'z==1.0 ; python_version >= "3.8" and python_version < "3.9"\n'
    )
    rs = RequirementSet()
    rs.add_file(lock)
    rs.check_hashes()  # (the target not known yet)
    rs.check_hashes({"python_version": "3.11", "python_full_version": "3.11.7"})
    with pytest.raises(HashModeError, match=r"these have none: z==1\.0"):
        rs.check_hashes({"python_version": "3.8", "python_full_version": "3.8.10"})


def _served(files: dict[str, str]) -> RequirementSet:
    """A set whose requirements files at URLs are these texts (by URL)."""

    def read(url: str) -> bytes:
        assert url in files, url  # no other URL is asked for
        return files[url].encode()

    return RequirementSet(read_url=read)


def test_files_at_urls_name_others_as_pip_reads_them(tmp_path: Path) -> None:
    """-r/-c inside a file read from a URL are joined to its URL (pip's urljoin); a local
    file's -r URL is read from the URL; a local folder it names is the current folder's."""
    local = tmp_path / "req.txt"
    local.write_text("-r https://h.example/reqs/top.txt\n")
    rs = _served(
        {
            "https://h.example/reqs/top.txt": "-r more.txt\n-c ../c/cons.txt\nalpha\n",
            "https://h.example/reqs/more.txt": "--find-links https://h.example/links/\nbeta\n",
            "https://h.example/c/cons.txt": "beta==1.0\n",
        }
    )
    rs.add_file(local)
    assert [str(w.req) for w in rs.wanted] == ["beta", "alpha"]
    assert [(str(c.req), c.where) for c in rs.constraints] == [
        ("beta==1.0", "https://h.example/c/cons.txt:1")
    ]
    assert rs.find_links == ["https://h.example/links/"]
    for line in ("-f links\n", "--find-links links\n"):  # from the current folder, as pip's
        named = _served({"https://h/r.txt": line})
        named.add_url("https://h/r.txt")
        assert named.find_links == ["links"]


def test_files_at_file_urls_are_read_from_disk_as_pip_reads_them(tmp_path: Path) -> None:
    """-r/-c file:///... (on the command line, in a local file, in a file read from a URL)
    is the file on disk, as pip's get_file_content reads it."""
    (tmp_path / "a b.txt").write_text("alpha\n")
    (tmp_path / "cons.txt").write_text("alpha==1.0\n")
    url = (tmp_path / "a b.txt").as_uri()  # (percent-encoded: a%20b.txt)
    local = tmp_path / "req.txt"
    local.write_text(f"-c {(tmp_path / 'cons.txt').as_uri()}\n")
    rs = _served({"https://h/r.txt": f"-r {url}\nbeta\n"})
    rs.add_url("https://h/r.txt")
    rs.add_file(local)
    rs.add_url(url.replace("file://", "file://localhost", 1))
    assert [str(w.req) for w in rs.wanted] == ["alpha", "beta", "alpha"]
    assert [str(c.req) for c in rs.constraints] == ["alpha==1.0"]
    loop = tmp_path / "loop.txt"
    loop.write_text(f"-r {loop.as_uri()}\n")
    with pytest.raises(UsageError, match="includes itself"):
        RequirementSet().add_url(loop.as_uri())


def test_files_at_urls_that_include_each_other_are_one_line() -> None:
    rs = _served({"https://h/a.txt": "-r b.txt\n", "https://h/b.txt": "-r a.txt\n"})
    with pytest.raises(UsageError, match=r"a\.txt: includes itself"):
        rs.add_url("https://h/a.txt")
    with pytest.raises(UsageError, match="give a file at a URL on the command line"):
        RequirementSet().add_url("https://h/a.txt")  # (no way to read one given)


def test_a_file_at_a_url_says_where_without_its_credentials() -> None:
    rs = _served({"https://u:secret@h/r.txt": "not a requirement!\n"})
    with pytest.raises(UsageError) as said:
        rs.add_url("https://u:secret@h/r.txt")
    assert "secret" not in str(said.value) and "r.txt:1" in str(said.value)


def test_uv_is_given_no_file_option_it_ignores(tmp_path: Path) -> None:
    """uv's requirement files take no --pre or --prefer-binary (it warned of "unsupported
    options" in segfetch's file); what they chose is in the plan already. pip gets them."""
    from segfetch.cli.reqset import pip_files
    from segfetch.wheels.installer import Installer

    rs = RequirementSet()
    rs.add_file(write(tmp_path, "r.txt", "--pre --prefer-binary --only-binary beta\nalpha\n"))
    for name, kept in [("uv", []), ("pip", ["--pre", "--prefer-binary"])]:
        folder = tmp_path / name
        folder.mkdir()
        pip_files(rs, {}, folder, Installer("uv" if name == "uv" else "pip", uv="uv"))
        lines = (folder / "requirements.txt").read_text().splitlines()
        assert lines == [*kept, "--only-binary beta", "alpha"], lines
