"""AMI wire names, spelled the way Asterisk spells them (main/manager.c and the event docs)."""

# Framing keys
ACTION = "Action"
ACTION_ID = "ActionID"
EVENT = "Event"
RESPONSE = "Response"
MESSAGE = "Message"
EVENT_LIST = "EventList"
OUTPUT = "Output"
PRIVILEGE = "Privilege"

# Response values
SUCCESS = "Success"
ERROR = "Error"
FOLLOWS = "Follows"
GOODBYE = "Goodbye"

# Identity of channels and calls
UNIQUEID = "Uniqueid"
LINKEDID = "Linkedid"
CHANNEL = "Channel"
DEST_UNIQUEID = "DestUniqueid"

# Events, Asterisk 12+
DIAL_BEGIN = "DialBegin"
DIAL_END = "DialEnd"
BRIDGE_ENTER = "BridgeEnter"
BRIDGE_LEAVE = "BridgeLeave"
NEWCHANNEL = "Newchannel"
NEWSTATE = "Newstate"
HANGUP = "Hangup"
ORIGINATE_RESPONSE = "OriginateResponse"

# Events, Asterisk <= 11
DIAL = "Dial"
BRIDGE = "Bridge"

# Actions
LOGIN = "Login"
LOGOFF = "Logoff"
CHALLENGE = "Challenge"
PING = "Ping"
FILTER = "Filter"
ORIGINATE = "Originate"
COMMAND = "Command"
CORE_SHOW_CHANNELS = "CoreShowChannels"

# Command output terminator before Asterisk 14 (`Response: Follows`)
END_COMMAND = "--END COMMAND--"
BANNER_PREFIX = "Asterisk Call Manager/"
