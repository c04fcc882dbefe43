"""Local stand-in for Entra ID, SharePoint Online, Microsoft Graph and Key Vault over real HTTPS.

The product and the real client libraries reach it only through configuration (``M365_CLOUD=local``,
``LOCAL_CLOUD_ENDPOINT``, ``LOCAL_CLOUD_CA_BUNDLE``); see README.md in this folder.
"""
from .control import SimulatorControl, SimulatorControlError
from .scenario import DEMO_SCENARIO, ScenarioError, load as load_scenario
from .server import Simulator, settings_env

__all__ = ["DEMO_SCENARIO", "ScenarioError", "Simulator",
           "SimulatorControl", "SimulatorControlError", "load_scenario", "settings_env"]
