"""`mlci images`: build and list the training images (mlci/base, mlci/sklearn, mlci/keras, mlci/torch).

Thin over mlci.runners.images, which holds the content hashing and the Docker calls.
"""
from __future__ import annotations

from pathlib import Path

import click

from mlci.cli._common import SEE_EXIT_HELP, console, handle_errors, out


@click.group("images", epilog=SEE_EXIT_HELP)
def images_group() -> None:
    """The training images: one per framework (sklearn, keras, torch) on mlci/base, built from the Dockerfiles in mlci."""


@images_group.command("build")
@click.argument("names", nargs=-1, type=click.Choice(["base", "sklearn", "keras", "torch"]))
@click.option("--base", "base_image", default=None, metavar="IMAGE",
              help="Image to build on [env MLCI_BASE_IMAGE; default: mlci/bookworm-python:3.11 when "
                   "`mlci images make-base` made it, else python:3.11-slim].")
@click.option("--wheelhouse", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of wheels for the images' Python [env MLCI_WHEELHOUSE; default: a checkout's "
                   ".cache/wheelhouse, else ~/.cache/mlci/wheelhouse]; missing wheels are downloaded into it.")
@click.option("--force", is_flag=True, help="Rebuild even when the content hash is unchanged.")
@click.option("--verbose", "-v", is_flag=True, help="Show the build output.")
@handle_errors
def images_build(names: tuple[str, ...], base_image: str | None, wheelhouse: Path | None, force: bool,
                 verbose: bool) -> None:
    """Build mlci/base, mlci/sklearn, mlci/keras and mlci/torch (or NAMES); unchanged images are not rebuilt."""
    from mlci.runners.images import build_images

    def progress(line: str) -> None:
        if verbose or line.startswith(("mlci/", "downloading", "pulling")):
            console.print(line, markup=False)

    results = build_images(names or None, base=base_image, wheelhouse=wheelhouse, force=force, progress=progress)
    for result in results:
        what = f"built in {result.seconds:.0f}s" if result.built else "unchanged"
        out.print(f"{result.tag}  {result.image_id[7:19]}  {result.size / 1e6:.0f} MB  {what}", markup=False)


@images_group.command("make-base")
@click.argument("image", required=False)
@handle_errors
def images_make_base(image: str | None) -> None:
    """Make the base image without a registry (debootstrap Debian bookworm + docker import); needs root.

    Runs make-base-image.sh, which ships inside mlci [IMAGE default mlci/bookworm-python:3.11]; an
    existing image is kept. Then: mlci images build --base IMAGE (the default finds it).
    """
    from mlci.runners.images import make_base_image

    make_base_image(image)


@images_group.command("list")
@handle_errors
def images_list() -> None:
    """The mlci images in the Docker engine, with framework, size and content hash."""
    from mlci.runners.images import list_images

    # Plain columns, not a rich table: scripts read this, and a table folds long tags on a narrow pipe.
    rows = [("IMAGE", "ID", "FRAMEWORK", "SIZE", "CREATED", "CONTENT HASH")]
    rows += [(info.tag, info.image_id[7:], info.framework or "-", f"{info.size / 1e6:.0f}MB", info.created,
              info.content_hash or "-") for info in list_images()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), markup=False,
                  soft_wrap=True)
