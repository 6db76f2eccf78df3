"""The README's literature card is experiments.literature_card's output: every number in
it comes from a shipped checkpoint, and every row names a published protocol."""


from experiments import configs, literature_card

from tests.helpers.paths import REPO


def test_the_readme_card_is_the_generated_one():
  readme = (REPO / "README.md").read_text()
  start, end = (readme.index(marker) for marker in literature_card.CARD_MARKERS)
  assert readme[start:end].split("\n", 1)[1].strip() == literature_card.card()


def test_every_row_is_a_published_run_of_a_study():
  names = [row.name for row in literature_card.ROWS]
  assert len(set(names)) == len(names)
  for row in literature_card.ROWS:
    study = configs.load(row.config)
    assert row.run in dict(study.runs)
    assert row.run in configs.module(row.config).PUBLISHED
    assert row.compare_to is None or row.compare_to in names
