// Chat client in QML: a ClientSocket from sockcomp's QML module, talking to samples/chat_server.py.
//
// The protocol is UTF-8 lines ("nick: text\n"), relayed by the server to every client, so the
// socket frames by line (framing: fmLine) and each line arrives in onLineReceived, never split.
// Run it with samples/chat_qml.py, which registers the QML types (sockcomp.qml).
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Sockcomp

ApplicationWindow {
    id: window
    width: 720
    height: 480
    minimumWidth: 560
    minimumHeight: 320
    visible: true
    title: qsTr("sockcomp chat — QML")

    // set by chat_qml.py (command line)
    property string host: "localhost"
    property int port: 5000
    property string nick: "guest"
    property bool autoConnect: false

    property bool wanted: false             // the user asked to be connected
    readonly property QtObject client: chat // for scripts and tests
    signal lineShown(string line)           // every line added to the transcript

    function connectToServer() {
        chat.close()
        chat.host = hostField.text.trim()
        chat.port = portField.value
        wanted = true
        try {
            chat.open()
        } catch (e) {                       // e.g. no host given
            wanted = false
            showState(qsTr("cannot connect: %1").arg(e.message))
        }
    }

    function disconnectFromServer() {
        wanted = false
        chat.close()                        // also stops autoReconnect
        showState(qsTr("disconnected"))
    }

    function say(text) {
        const who = nickField.text.trim() || "guest"
        return chat.socket.sendLine(who + ": " + text) > 0
    }

    function sendInput() {
        if (input.text.length > 0 && chat.socket.connected && say(input.text))
            input.clear()
    }

    function showLine(line) {
        const colon = line.indexOf(": ")
        const system = line.startsWith("*") || colon < 1
        messages.append({ who: system ? "" : line.slice(0, colon),
                          body: system ? line : line.slice(colon + 2),
                          system: system })
        transcript.positionViewAtEnd()
        lineShown(line)
    }

    function showState(text) {
        stateLabel.text = text
    }

    function nickColor(name) {              // a stable colour per nick
        let h = 0
        for (let i = 0; i < name.length; i++)
            h = (h * 31 + name.charCodeAt(i)) % 1000003
        return Qt.hsla((h * 0.618034) % 1, 0.6, 0.36, 1)
    }

    ClientSocket {
        id: chat
        framing: ClientSocket.FramingMode.fmLine
        autoReconnect: true                 // the link drops: try again, backing off to 30 s
        reconnectInterval: 2000

        onConnecting: (socket) => window.showState(qsTr("connecting to %1:%2…").arg(chat.host).arg(chat.port))
        onConnect: (socket) => window.showState(qsTr("connected to %1:%2").arg(socket.remoteAddress).arg(socket.remotePort))
        onLineReceived: (socket, line) => window.showLine(line)
        onDisconnect: (socket) => window.showState(window.wanted ? qsTr("no connection — retrying")
                                                                 : qsTr("disconnected"))
        onReconnect: (socket) => window.showState(qsTr("reconnecting (attempt %1)…").arg(chat.reconnectAttempt))
        onError: (socket, error) => {
            window.showLine("* %1 error %2: %3".arg(error.errorEventName).arg(error.errorCode).arg(error.message))
            error.errorCode = 0             // handled (ErrorCode := 0); disconnect follows
        }
    }

    header: ToolBar {
        RowLayout {
            anchors.fill: parent
            anchors.leftMargin: 10
            anchors.rightMargin: 10
            spacing: 8

            Label { text: qsTr("Host") }
            TextField {
                id: hostField
                objectName: "hostField"
                text: window.host
                enabled: !window.wanted
                selectByMouse: true
                Layout.fillWidth: true
                Layout.minimumWidth: 100
            }
            Label { text: qsTr("Port") }
            SpinBox {
                id: portField
                objectName: "portField"
                from: 1
                to: 65535
                value: window.port
                editable: true
                enabled: !window.wanted
                textFromValue: (value, locale) => value.toString()   // no thousands separator
                valueFromText: (text, locale) => parseInt(text) || 0
            }
            Label { text: qsTr("Nick") }
            TextField {
                id: nickField
                objectName: "nickField"
                text: window.nick
                selectByMouse: true
                Layout.preferredWidth: 110
            }
            Button {
                objectName: "connectButton"
                text: window.wanted ? qsTr("Disconnect") : qsTr("Connect")
                highlighted: !window.wanted
                onClicked: window.wanted ? window.disconnectFromServer() : window.connectToServer()
            }
        }
    }

    Frame {
        anchors.fill: parent
        anchors.margins: 10
        anchors.bottomMargin: 0
        padding: 1
        background: Rectangle {
            color: window.palette.base
            border.color: window.palette.mid
            radius: 3
        }

        ListView {
            id: transcript
            anchors.fill: parent
            anchors.margins: 8
            clip: true
            spacing: 6
            model: ListModel { id: messages }
            ScrollBar.vertical: ScrollBar { }

            delegate: RowLayout {
                required property string who
                required property string body
                required property bool system
                width: ListView.view.width - 12
                spacing: 10

                Label {
                    visible: !system
                    text: who
                    font.bold: true
                    color: window.nickColor(who)
                    Layout.alignment: Qt.AlignTop
                    Layout.preferredWidth: 80
                    horizontalAlignment: Text.AlignRight
                    elide: Text.ElideRight
                }
                Label {
                    text: body
                    wrapMode: Text.Wrap
                    font.italic: system
                    opacity: system ? 0.6 : 1
                    Layout.fillWidth: true
                }
            }

            Label {
                anchors.centerIn: parent
                visible: messages.count === 0
                text: window.wanted ? qsTr("No messages yet")
                                    : qsTr("Connect to a chat server to start")
                opacity: 0.5
            }
        }
    }

    footer: Pane {
        padding: 10
        ColumnLayout {
            anchors.fill: parent
            spacing: 6

            RowLayout {
                spacing: 8
                Layout.fillWidth: true
                TextField {
                    id: input
                    objectName: "input"
                    placeholderText: qsTr("Say something…")
                    enabled: chat.socket.connected
                    selectByMouse: true
                    Layout.fillWidth: true
                    onAccepted: window.sendInput()
                }
                Button {
                    objectName: "sendButton"
                    text: qsTr("Send")
                    enabled: chat.socket.connected && input.text.length > 0
                    onClicked: window.sendInput()
                }
            }
            RowLayout {
                spacing: 6
                Rectangle {             // connection light
                    width: 10
                    height: 10
                    radius: 5
                    color: chat.socket.connected ? "#2e9d4f" : window.wanted ? "#d89a1b" : "#9a9a9a"
                }
                Label {
                    id: stateLabel
                    objectName: "stateLabel"
                    text: qsTr("not connected")
                    opacity: 0.8
                    Layout.fillWidth: true
                    elide: Text.ElideRight
                }
            }
        }
    }

    Component.onCompleted: if (autoConnect) connectToServer()
}
