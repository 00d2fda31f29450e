from pathlib import Path

from setuptools import find_packages, setup


def reqs(name):
    lines = (Path(__file__).parent / "requirements" / name).read_text().splitlines()
    return [l.strip() for l in lines if l.strip() and not l.startswith("#")]


setup(
    name="prefswift",
    version="0.1.0",
    description="Align LLMs with human preferences (ORPO, DPO, SimPO, CPO) from the command line",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["prefswift", "prefswift.*"]),
    package_data={"prefswift": ["data/demo_data/*", "distributed/ds_configs/*.json", "web/static/*"]},
    include_package_data=True,
    python_requires=">=3.9",
    install_requires=reqs("core.txt"),
    extras_require={"test": reqs("test.txt"), "gpu": reqs("gpu.txt")},
    entry_points={"console_scripts": ["prefswift=prefswift.cli:main",
                                      "prefswift-download-dataset=prefswift.data.download:main"]},
)
