"""Convert HELP's NAS-Bench-201 latency measurements into nas's own whole-architecture tables.

    .venv/bin/python benchmarks/import_help_nb201.py HELP_DIR [--out nas/assets/latency_luts]

HELP_DIR holds HELP's ``data/nasbench201/latency/`` files (Lee et al., NeurIPS 2021,
https://github.com/HayeonLee/HELP): ``<device>.pt`` (a torch-pickled list, one latency in ms per
NAS-Bench-201 architecture in index order), ``str_arch2idx.pt`` (architecture string -> index) and
``LICENSE`` (MIT). For each of the six devices it writes ``OUT/<device>/nb201/arch.yaml.gz`` (an
``arch_table``: key = the architecture string, ``mean`` = the published figure copied unchanged,
``std`` 0, ``count`` 1), ``OUT/<device>/device.yaml`` and ``OUT/<device>/LICENSE-HELP``.
Run at development time only: nas never reads HELP's files at run time. Needs torch to read them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.latency._table import DeviceInfo, Entry, write_device, write_table  # noqa: E402

N_ARCHS = 15625
COMMAND = "benchmarks/import_help_nb201.py <HELP>/data/nasbench201/latency"

# What HELP's files and paper say of each device; what they do not say is written as unknown.
DEVICES = {
    "pixel2": ("Google Pixel 2 (Qualcomm Snapdragon 835)", True),
    "pixel3": ("Google Pixel 3 (Qualcomm Snapdragon 845)", False),
    "samsung_a50": ("Samsung Galaxy A50 (Samsung Exynos 9610)", True),
    "samsung_s7": (
        "Samsung Galaxy S7 (Exynos 8890 or Snapdragon 820 by market; the source does not say)",
        True,
    ),
    "essential_ph_1": ("Essential Phone PH-1 (Qualcomm Snapdragon 835)", True),
    "raspi4": ("Raspberry Pi 4 Model B (Broadcom BCM2711, 4x Cortex-A72)", False),
}


def _load(path: Path) -> object:
    import torch  # only this development-time script reads HELP's torch pickles

    return torch.load(path, map_location="cpu", weights_only=True)


def _device_info(name: str, soc: str, whole_ms: bool) -> DeviceInfo:
    resolution = (
        "whole milliseconds (HELP publishes integers for this device: ties are common)"
        if whole_ms
        else "fractional milliseconds"
    )
    return DeviceInfo(
        name=name,
        soc=soc,
        runtime="unknown (not published with the data; HELP's paper only names the device)",
        runtime_version="unknown (not published)",
        threads=None,
        delegate="unknown (not published)",
        measured=(
            f"one latency per NAS-Bench-201 architecture (all {N_ARCHS}), as published by "
            f"HELP; {resolution}; the number of runs behind each figure is not published "
            "(count 1 = one published figure, std 0 = no spread published)"
        ),
        provenance=(
            "HELP (Lee et al., 'HELP: Hardware-Adaptive Efficient Latency Prediction for NAS via "
            "Meta-Learning', NeurIPS 2021), repository HayeonLee/HELP, "
            f"data/nasbench201/latency/{name}.pt with str_arch2idx.pt; values copied unchanged "
            f"by `{COMMAND}`. MIT licence: LICENSE-HELP beside this file."
        ),
        notes=(
            "NAS-Bench-201 cell space only (key: the architecture string, e.g. "
            "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|"
            "nor_conv_3x3~2|); fp32 only."
        ),
        kind="arch_table",
    )


def convert(help_dir: Path, out: Path) -> None:
    index = _load(help_dir / "str_arch2idx.pt")
    if not isinstance(index, dict) or sorted(index.values()) != list(range(N_ARCHS)):
        raise SystemExit(
            f"{help_dir}/str_arch2idx.pt: expected {N_ARCHS} strings -> 0..{N_ARCHS - 1}"
        )
    licence = help_dir / "LICENSE"
    if not licence.is_file():
        raise SystemExit(f"{licence} not found: HELP's MIT licence must ship with the tables")
    for name, (soc, whole_ms) in DEVICES.items():
        values = _load(help_dir / f"{name}.pt")
        if len(values) != N_ARCHS:
            raise SystemExit(f"{help_dir}/{name}.pt: {len(values)} values, expected {N_ARCHS}")
        if whole_ms != all(isinstance(v, int) for v in values):
            raise SystemExit(f"{help_dir}/{name}.pt: whole ms expected to be {whole_ms}")
        entries = {key: Entry(float(values[i]), 0.0, 1) for key, i in index.items()}
        write_table(out / name / "nb201" / "arch.yaml.gz", entries)
        write_device(out / name / "device.yaml", _device_info(name, soc, whole_ms))
        shutil.copyfile(licence, out / name / "LICENSE-HELP")
        print(f"{name}: {len(entries)} architectures -> {out / name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("help_dir", type=Path, help="HELP's data/nasbench201/latency folder")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "nas" / "assets" / "latency_luts",
    )
    args = parser.parse_args()
    convert(args.help_dir, args.out)


if __name__ == "__main__":
    main()
