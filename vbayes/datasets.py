"""Every dataset vbayes knows, in one registry: its name, image shape, binarizations,
where its data comes from and how offline files are checked.

Adding a tfds image dataset is one `Dataset` entry here (plus its loader's
preprocessing in vbayes/data.py if tfds does not give [N, H, W] uint8 images).
"""

import dataclasses
import math

# Where tfds keeps prepared datasets, and the folder of original files it prepares them
# from offline (laid out like ../shared/data); flags override both.
DATA_DIR_ENV = "TFDS_DATA_DIR"
MANUAL_DIR_ENV = "VBAYES_MANUAL_DIR"


@dataclasses.dataclass(frozen=True)
class Dataset:
  """name: the config's and the command line's; image_shape: (H, W); binarizations:
  those that apply, the first the default; tfds_name: the tensorflow-datasets builder
  (None: generated here); manual_files: what tfds reads from its manual dir, laid out
  as ../shared/data/<name>/; published: (size, SHA-256) of each file tfds reads, as
  tensorflow-datasets records them; download_host: what a machine that cannot prepare
  it offline would need to reach; binary: stored as {0, 1} already; unpack_manual_files:
  the manual dir holds them gzipped but tfds reads them plain; validation_split: tfds
  has a "validation" split."""
  name: str
  image_shape: tuple[int, int]
  binarizations: tuple[str, ...]
  tfds_name: str | None = None
  manual_files: tuple[str, ...] = ()
  published: tuple[tuple[str, int, str], ...] = ()
  download_host: str | None = None
  binary: bool = False
  unpack_manual_files: bool = False
  validation_split: bool = False  # tfds gives a "validation" split

  @property
  def data_dim(self) -> int:
    return math.prod(self.image_shape)

  def published_file(self, filename: str) -> tuple[int, str]:
    """(size, SHA-256) of a file tfds reads."""
    return {f: (size, sha) for f, size, sha in self.published}[filename]


BINARIZED_MNIST = Dataset(
    name="binarized_mnist", image_shape=(28, 28), binarizations=("fixed",),
    tfds_name="binarized_mnist", binary=True, download_host="www.cs.toronto.edu",
    validation_split=True,
    unpack_manual_files=True,  # tfds reads and records the .amat files plain
    manual_files=("binarized_mnist_train.amat.gz", "binarized_mnist_valid.amat.gz",
                  "binarized_mnist_test.amat.gz"),
    published=(
        ("binarized_mnist_train.amat", 78400000,
         "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
        ("binarized_mnist_valid.amat", 15680000,
         "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
        ("binarized_mnist_test.amat", 15680000,
         "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"),
    ))

MNIST = Dataset(
    name="mnist", image_shape=(28, 28), binarizations=("dynamic", "threshold", "none"),
    tfds_name="mnist", download_host="storage.googleapis.com",
    manual_files=("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    published=(
        ("train-images-idx3-ubyte.gz", 9912422,
         "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz", 28881,
         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz", 1648877,
         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz", 4542,
         "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ))

# The four 2x2 images of Mescheder et al. (2017), generated (vbayes.data.four_frames).
FOUR_FRAMES = Dataset(name="4frames", image_shape=(2, 2), binarizations=("fixed",),
                      binary=True)

DATASETS = {d.name: d for d in (BINARIZED_MNIST, MNIST, FOUR_FRAMES)}
