"""TFX recommender: MovieLens -> TFX pipeline -> TFRS model -> TF Serving."""
import setuptools

setuptools.setup(
    name="tfx-recsys",
    version="0.1.0",
    description="TFX + TensorFlow Recommenders pipeline with TF Serving export",
    python_requires=">=3.10,<3.11",
    packages=setuptools.find_packages(include=[
        "pipeline", "pipeline.*", "components", "components.*", "trainer",
        "trainer.*", "serving", "serving.*"]),
    package_data={"": ["*.pbtxt", "*.json"],
                  "serving": ["explorer_static/*"]},
    # Versions are pinned by requirements/lock.txt; install from it with uv.
    install_requires=[],
    entry_points={"console_scripts": ["recsys=pipeline.cli:main"]},
)
