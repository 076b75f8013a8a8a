"""Constants of the VoiceClone integration."""

DOMAIN = "voiceclone"
DEFAULT_PORT = 10200
DEFAULT_WEB_PORT = 8099
CONF_WEB_PORT = "web_port"
CONF_DEFAULT_VOICE = "default_voice"
CONF_DEFAULT_LANGUAGE = "default_language"
PROGRAM_NAME = "voiceclone"
UPDATE_INTERVAL_S = 30
# A repair is raised once the server has missed this many polls in a row (about 1.5 minutes): a restart of the
# add-on is not worth a repair, an add-on that stays stopped is.
UNREACHABLE_POLLS = 3
ISSUE_UNREACHABLE = "server_unreachable"
ISSUE_MODEL_MISSING = "model_missing"
ISSUE_ENGINE_UNAVAILABLE = "engine_unavailable"
