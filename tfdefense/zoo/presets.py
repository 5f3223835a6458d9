"""Zoo entries as data: a template per kind of entry, filled in once per variant.

Each family keeps its entries in a pure-data ``presets.py`` (as keras-hub keeps
``<model>_presets.py``): a ``TEMPLATE`` whose strings name a variant's values
in braces, and the ``VARIANTS`` (by default the papers' two datasets). A
string that is exactly one placeholder takes the value itself, so numbers and
dicts stay what they are; any other string is formatted with the values
(format specs included: ``"{fpr:.1%}"``). ``name`` is filled first and is a
value too, so ``"path": "{name}"`` works.

Example:
    >>> template = {"name": "magnet_{short}", "family": "magnet", "path": "{name}",
    ...             "config": {"latent_dim": "{latent}"}, "metadata": {"dataset": "{dataset}"}}
    >>> entry, = expand(template, [{"dataset": "mnist", "short": "mnist", "latent": 20}])
    >>> entry["name"], entry["path"], entry["config"]
    ('magnet_mnist', 'magnet_mnist', {'latent_dim': 20})
"""

import copy
import string

# The seed papers' datasets and the short names their entries carry.
PAPER_DATASETS = ({"dataset": "mnist", "short": "mnist"}, {"dataset": "fashion_mnist", "short": "fmnist"})


def expand(template, variants=PAPER_DATASETS):
    """One entry per variant: ``template`` with every placeholder filled from the variant's values.

    Raises:
        KeyError: a placeholder that a variant does not give, naming both.
    """
    entries = []
    for variant in variants:
        values = dict(variant)
        values["name"] = _fill(template["name"], values, template)
        entries.append(_fill(template, values, template))
    return entries


def _fill(value, values, template):
    if isinstance(value, dict):
        return {key: _fill(item, values, template) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(item, values, template) for item in value)
    if not isinstance(value, str):
        return value
    fields = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
    missing = sorted({field.split(".")[0] for field in fields} - set(values))
    if missing:
        raise KeyError(f"preset {values.get('name', template.get('name'))!r}: the variant {sorted(values)} gives no {missing} "
                       f"for {value!r}.")
    if len(fields) == 1 and value == "{" + fields[0] + "}":
        return copy.deepcopy(values[fields[0]])
    return value.format(**values)
