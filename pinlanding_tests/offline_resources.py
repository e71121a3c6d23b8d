"""The resources graph tests run with: a temporary data home, a catalog, local Spark, and
the offline teacher (no endpoint in tests)."""

from pathlib import Path

from pinlanding_assets.defs.llm_resources import LLMResource
from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource, RunProfileResource, spark_resource


def offline_resources(home: Path, catalog: Path) -> dict:
    return {
        "data_home": DataHomeResource(home=str(home)),
        "catalog": CatalogResource(location=str(catalog)),
        "spark": spark_resource(home=str(home)),
        "llm": LLMResource(extractor="offline"),
        "run_profile": RunProfileResource(),  # the configs' defaults, whatever $PINLANDING_RUN_PROFILE says
    }
