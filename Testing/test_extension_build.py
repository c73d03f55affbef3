"""The Slicer extension build files and the Extensions Index entry.

Static checks follow the Extensions Index's own checker (Slicer/ExtensionsIndex
scripts/check_description_files.py: the project() and URL regexes, LF-only JSON, known category)
and the catalog-entry schema v1.0.1. Then CMake itself configures the real CMakeLists.txt files
against a stand-in Slicer whose macros record what would be shipped, with the destinations that
Slicer's ``slicerMacroBuildScriptedModule`` / CTK's ``ctkMacroCompilePythonScript`` compute, so
the test sees the installed ``qt-scripted-modules`` layout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULES = ("SpineSeg", "SpineSegMetrics")
SCRIPTED = "lib/Slicer-5.10/qt-scripted-modules"
RAW_PREFIX = "https://raw.githubusercontent.com/spineseg/SlicerSpineSeg/main/"

# Slicer/Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json (required keys, property types).
SCHEMA_REQUIRED = ("$schema", "category", "scm_url")
SCHEMA_TYPES = {
    "$schema": str,
    "category": str,
    "scm_url": str,
    "scm_revision": str,
    "scm_type": str,
    "build_dependencies": list,
    "build_subdirectory": str,
    "enabled": bool,
    "tier": int,
}
SCHEMA_URL = (
    "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json#"
)


def root_cmake() -> str:
    return (REPO / "CMakeLists.txt").read_text(encoding="utf-8")


def test_index_entry_validates_against_the_catalog_schema():
    raw = (REPO / "SpineSeg.json").read_bytes()
    assert b"\r" not in raw, "the Extensions Index accepts LF line endings only"
    entry = json.loads(raw)
    for key in SCHEMA_REQUIRED:
        assert key in entry
    assert set(entry) <= set(SCHEMA_TYPES), "the schema allows no additional properties"
    for key, value in entry.items():
        assert isinstance(value, SCHEMA_TYPES[key]) and not (SCHEMA_TYPES[key] is int and isinstance(value, bool))
    assert entry["$schema"] == SCHEMA_URL
    assert entry.get("scm_type", "git") in ("git", "local")
    assert 1 <= entry.get("tier", 1) <= 5
    assert all(isinstance(d, str) for d in entry.get("build_dependencies", []))
    assert entry["category"] == "Segmentation"
    assert entry["scm_url"] == "https://github.com/spineseg/SlicerSpineSeg"
    assert entry["build_dependencies"] == ["PyTorch"]


def test_project_name_equals_the_index_entry_name_and_is_not_prefixed_slicer():
    # the index checker's regex: the first project( in the top-level CMakeLists.txt
    name = re.findall(r"project\s*\(\s*([^\s\)\n\r]+)", root_cmake(), re.IGNORECASE | re.MULTILINE)[0]
    assert name == "SpineSeg" == Path("SpineSeg.json").stem
    assert not name.lower().startswith("slicer")
    assert (REPO / "LICENSE").is_file()


def test_metadata_urls_point_at_images_that_exist_in_the_repository():
    text = root_cmake()
    icon = re.findall(r'set\s*\(EXTENSION_ICONURL\s*"([^"]+)"[ ]*\)', text, re.IGNORECASE | re.MULTILINE)
    shots = re.findall(r'set\s*\(EXTENSION_SCREENSHOTURLS\s*"([^"]+)"\)', text, re.IGNORECASE | re.MULTILINE)
    assert len(icon) == 1 and len(shots) == 1
    urls = [icon[0], *shots[0].split()]
    assert len(urls) >= 2
    for url in urls:
        assert url.startswith(RAW_PREFIX), url
        path = REPO / url[len(RAW_PREFIX) :]
        assert path.suffix == ".png" and path.is_file(), f"{url} names {path}, which is not in the repository"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert icon[0].startswith(RAW_PREFIX + "Resources/")
    assert all(u.startswith(RAW_PREFIX + "docs/") for u in shots[0].split())
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION"):
        assert re.search(rf'set\({key} "[^"]+"\)', text), key
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in text


def test_every_module_and_the_library_are_added():
    added = re.findall(r"^add_subdirectory\((\w+)\)", root_cmake(), re.M)
    assert added == ["SpineSegLib", *MODULES]
    for module in MODULES:
        text = (REPO / module / "CMakeLists.txt").read_text(encoding="utf-8")
        assert f"set(MODULE_NAME {module})" in text
        assert re.search(r"slicerMacroBuildScriptedModule\([^)]*WITH_GENERIC_TESTS", text, re.S)
        assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


# ----------------------------------------------------------------------------------------------
# CMake configure against a stand-in Slicer

FAKE_SLICER_CONFIG = """
set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake)
set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/Empty.cmake)
set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/Empty.cmake)
"""

# Same argument handling and destinations as CTK's ctkMacroCompilePythonScript (SOURCE_DIR defaults to
# the current source dir; a script lands at DESTINATION_DIR/<its relative path>, ".py" appended when
# missing; resources likewise) and Slicer's slicerMacroBuildScriptedModule (existence check of every
# listed file, DESTINATION_DIR = <build>/<Slicer_QTSCRIPTEDMODULES_LIB_DIR>).
FAKE_USE_SLICER = r"""
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "@SCRIPTED@")
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "@SCRIPTED@")
set(BUILD_TESTING ON)
set(SHIP_LOG "${CMAKE_BINARY_DIR}/shipped.txt")
file(WRITE ${SHIP_LOG} "")

macro(ctkMacroCompilePythonScript)
  cmake_parse_arguments(MY "NO_INSTALL_SUBDIR;GLOBAL_TARGET" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR"
    "SCRIPTS;RESOURCES" ${ARGN})
  if(NOT DEFINED MY_SOURCE_DIR)
    set(MY_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  foreach(kind SCRIPTS RESOURCES)
    foreach(file ${MY_${kind}})
      if(kind STREQUAL "SCRIPTS")
        get_filename_component(ext ${file} EXT)
        if(NOT "${ext}" MATCHES "py")
          set(file "${file}.py")
        endif()
      endif()
      if(IS_ABSOLUTE ${file})
        message(FATAL_ERROR "absolute path ${file}: it would be copied relative to the build folder")
      endif()
      if(NOT EXISTS "${MY_SOURCE_DIR}/${file}")
        message(FATAL_ERROR "${MY_TARGET_NAME}: ${file} does not exist in ${MY_SOURCE_DIR}")
      endif()
      file(RELATIVE_PATH dest "${CMAKE_BINARY_DIR}" "${MY_DESTINATION_DIR}/${file}")
      file(APPEND ${SHIP_LOG} "${MY_TARGET_NAME}|${kind}|${MY_SOURCE_DIR}/${file}|${dest}\n")
    endforeach()
  endforeach()
endmacro()

macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY_SLICER "WITH_GENERIC_TESTS;WITH_SUBDIR;VERBOSE" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  if(MY_SLICER_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "Unknown keywords given to slicerMacroBuildScriptedModule(): ${MY_SLICER_UNPARSED_ARGUMENTS}")
  endif()
  file(APPEND ${SHIP_LOG} "${MY_SLICER_NAME}|MODULE|generic=${MY_SLICER_WITH_GENERIC_TESTS}|\n")
  ctkMacroCompilePythonScript(TARGET_NAME ${MY_SLICER_NAME} SCRIPTS "${MY_SLICER_SCRIPTS}"
    RESOURCES "${MY_SLICER_RESOURCES}" DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}
    INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR} NO_INSTALL_SUBDIR)
endmacro()

function(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "SCRIPT;TESTNAME_PREFIX" "SLICER_ARGS" ${ARGN})
  if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${MY_SCRIPT})
    message(FATAL_ERROR "unittest script ${MY_SCRIPT} not found")
  endif()
  get_filename_component(name ${MY_SCRIPT} NAME_WE)
  file(APPEND ${SHIP_LOG} "test|UNITTEST|${CMAKE_CURRENT_SOURCE_DIR}/${MY_SCRIPT}|py_${name}\n")
endfunction()
"""


def configure(source: Path, tmp: Path) -> list[tuple[str, str, str, str]]:
    fake = tmp / "fake-slicer"
    fake.mkdir()
    (fake / "SlicerConfig.cmake").write_text(FAKE_SLICER_CONFIG)
    (fake / "UseSlicer.cmake").write_text(FAKE_USE_SLICER.replace("@SCRIPTED@", SCRIPTED))
    (fake / "Empty.cmake").write_text("")
    build = tmp / "build"
    done = subprocess.run(
        ["cmake", "-S", str(source), "-B", str(build), f"-DSlicer_DIR={fake}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (build / "shipped.txt").read_text().splitlines()
    return [tuple(line.split("|")) for line in lines if line]


def copy_extension_sources(target: Path) -> None:
    """The files the extension build reads (CMake files, modules, library, resources) into ``target``."""
    target.mkdir(parents=True)
    for name in ("CMakeLists.txt", "SpineSegLib", *MODULES, "Resources"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(src, target / name)


needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed (apt package cmake)")


@needs_cmake
def test_cmake_ships_every_python_file_and_resource_to_the_scripted_modules_folder(tmp_path):
    source = tmp_path / "src"
    copy_extension_sources(source)
    # a bundled model set, as the real one will be, to see where the manifest lands
    models = source / "Resources" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "manifest.json").write_text('{"pipelines": {}}')
    (models / "tiny-spine.safetensors").write_bytes(b"x")
    (models / "tiny-spine.json").write_text("{}")
    entries = configure(source, tmp_path)
    shipped = {dest for _, kind, _, dest in entries if kind in ("SCRIPTS", "RESOURCES")}
    modules = {name: flags for name, kind, flags, _ in entries if kind == "MODULE"}
    assert modules == {m: "generic=TRUE" for m in MODULES}
    tests = sorted(dest for _, kind, _, dest in entries if kind == "UNITTEST")
    assert tests == [f"py_{m}" for m in sorted(MODULES)]  # the ctest names slicer_add_python_unittest gives

    def expect(relative_source: Path, destination: str) -> None:
        assert f"{SCRIPTED}/{destination}" in shipped, f"{relative_source} is not shipped as {destination}"

    for py in sorted((REPO / "SpineSegLib").rglob("*.py")):
        if "__pycache__" not in py.parts:
            rel = py.relative_to(REPO)
            expect(rel, rel.as_posix())
    for module in MODULES:
        for py in sorted((REPO / module).rglob("*.py")):
            rel = py.relative_to(REPO / module)
            if rel.parts[0] == "Resources":
                continue  # scripts under Resources ship as resources, checked below
            expect(py, rel.as_posix())
        for res in ("Icons", "UI"):
            for f in sorted((REPO / module / "Resources" / res).iterdir()):
                expect(f, f"Resources/{res}/{f.name}")
    expect(Path("SpineSeg/Resources/Scripts/spineseg_batch.py"), "Resources/Scripts/spineseg_batch.py")
    # SpineSegLib.models.manifest.resources_dir() looks in <folder containing SpineSegLib>/Resources
    for name in ("manifest.json", "tiny-spine.safetensors", "tiny-spine.json"):
        expect(Path("Resources/models") / name, f"Resources/models/{name}")
    assert f"{SCRIPTED}/SpineSegLib/__init__.py" in shipped
    # nothing from the tests or the training package is shipped, and no two files land on one path
    assert not any("/Testing/" in d or "/training/" in d for d in shipped)
    destinations = [dest for _, kind, _, dest in entries if kind in ("SCRIPTS", "RESOURCES")]
    assert len(destinations) == len(set(destinations))


def test_resources_dir_finds_the_manifest_in_the_installed_layout(tmp_path):
    """Lay out SpineSegLib as the build installs it and ask the real resources_dir() where the models are."""
    installed = tmp_path / SCRIPTED
    shutil.copytree(REPO / "SpineSegLib", installed / "SpineSegLib", ignore=shutil.ignore_patterns("__pycache__"))
    (installed / "Resources" / "models").mkdir(parents=True)
    (installed / "Resources" / "models" / "manifest.json").write_text('{"pipelines": {}}')
    env = {k: v for k, v in os.environ.items() if k != "SPINESEG_RESOURCES"}
    env["PYTHONPATH"] = str(installed)
    code = "import SpineSegLib.models.manifest as m; print(m.__file__); print(m.resources_dir())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=installed, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    module_file, found = done.stdout.split()
    assert Path(module_file).is_relative_to(installed)  # the installed copy, not the source tree
    assert Path(found) == installed / "Resources"
