"""Constants of the VoiceClone integration."""

DOMAIN = "voiceclone"
DEFAULT_PORT = 10200
DEFAULT_WEB_PORT = 8099
CONF_WEB_PORT = "web_port"
CONF_DEFAULT_VOICE = "default_voice"
CONF_DEFAULT_LANGUAGE = "default_language"
PROGRAM_NAME = "voiceclone"
UPDATE_INTERVAL_S = 30
