"""An executed theory notebook as one HTML page that fetches nothing: its math is MathML, made at build time.

    python -m theory._html paper_figs/theory/variance.ipynb paper_figs/theory/variance.html

nbconvert's lab template without its scripts (require.js, MathJax, mermaid: all loaded from a CDN), so the
page renders offline. The LaTeX of markdown cells (``$...$``, ``$$...$$``) and of LaTeX outputs (sympy
results shown with ``IPython.display.Math``) is converted to MathML by latex2mathml, which browsers draw
natively.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import jinja2
import nbformat
from latex2mathml.converter import convert
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

from experiments.atomic import atomic_write_text

TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock %}
{% block jupyter_widgets %}{% endblock %}
{% block html_head_js_mathjax %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block extra_css %}<style type="text/css">math { font-size: 1.15em; }</style>{% endblock %}
{% block data_latex scoped %}
<div class="jp-RenderedLatex jp-OutputArea-output {{ extra_class }}" data-mime-type="text/latex">
{{ output.data['text/latex'] | latex_to_mathml }}
</div>
{%- endblock data_latex %}
"""

DELIMITERS = re.compile(r"^\s*(\$\$|\$|\\\[)(.*?)(\$\$|\$|\\\])\s*$", re.DOTALL)
XMLNS = ' xmlns="http://www.w3.org/1998/Math/MathML"'


def mathml(latex: str, display: str = "inline") -> str:
    """``<math>`` for HTML, which needs no namespace; with one, nbconvert's heading anchors (made by parsing
    the heading as XML) would write ``ns0:math``, which browsers do not draw."""
    return convert(latex, display=display).replace(XMLNS, "", 1)


def latex_to_mathml(latex: str) -> str:
    """A LaTeX output (``$...$``, ``$$...$$`` or ``\\[...\\]``, as IPython writes them) as display MathML."""
    match = DELIMITERS.match(latex)
    return mathml(match.group(2) if match else latex, display="block")


class MathMLRenderer(IPythonRenderer):
    def inline_math(self, body: str) -> str:
        return mathml(body)

    def block_math(self, body: str) -> str:
        return mathml(body, display="block")


@jinja2.pass_context
def markdown2html(context, source: str) -> str:
    """nbconvert's markdown filter, with the math as MathML."""
    renderer = MathMLRenderer(escape=False, attachments=context.get("cell", {}).get("attachments", {}))
    return MarkdownWithMath(renderer=renderer).render(source)


def render(notebook: Path) -> str:
    exporter = HTMLExporter(template_file="offline.html.j2",
                            extra_loaders=[jinja2.DictLoader({"offline.html.j2": TEMPLATE})],
                            filters={"markdown2html": markdown2html, "latex_to_mathml": latex_to_mathml})
    html, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    return html


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path, help="an executed .ipynb")
    parser.add_argument("out", type=Path, help="the .html page to write")
    args = parser.parse_args(argv)
    atomic_write_text(args.out, render(args.notebook))


if __name__ == "__main__":
    main()
