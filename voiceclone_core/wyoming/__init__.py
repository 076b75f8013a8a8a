"""The Wyoming TTS door: what Home Assistant's Assist pipeline and ``tts.speak`` talk to."""
