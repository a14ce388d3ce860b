// The page's script: plain browser JavaScript talking JSON over WebSockets. A chat line is a JSON-RPC
// call of "say"; its reply marks the line as delivered.
/* global document, location, WebSocket, setTimeout */
(function () {
  'use strict'
  const $ = id => document.getElementById(id)
  const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`
  let chat = null
  let myId = null
  let nextCall = 0
  const calls = new Map() // call id -> what to do with the reply

  function show (html, cls) {
    const p = document.createElement('p')
    if (cls) p.className = cls
    p.append(...html)
    $('log').append(p)
    $('log').scrollTop = $('log').scrollHeight
    return p
  }

  /** Calls a method of the chat (JSON-RPC 2.0); `done` gets the response. */
  function call (method, params, done) {
    const id = ++nextCall
    calls.set(id, done)
    chat.send(JSON.stringify({ jsonrpc: '2.0', method, params, id }))
  }

  /** The reply to "say": the line is marked delivered, or the error is shown. */
  function said (response) {
    if (response.error) {
      show([`Not sent: ${response.error.message}`], 'meta')
      return
    }
    const line = $('log').querySelector(`p[data-at="${response.result.at}"]`)
    if (line === null) return
    const mark = document.createElement('span')
    mark.className = 'delivered'
    mark.textContent = ` ✓ delivered to ${response.result.members}`
    line.append(mark)
  }
  const bold = text => { const b = document.createElement('b'); b.textContent = text; return b }

  function setConnected (connected, status) {
    $('status').textContent = status
    $('text').disabled = !connected
    $('send').disabled = !connected
    if (connected) $('text').focus()
  }

  function join (nick, room) {
    if (chat) chat.close(1000)
    $('log').replaceChildren()
    const socket = new WebSocket(`${wsBase}/ws/chat/${encodeURIComponent(room)}?nick=${encodeURIComponent(nick)}`)
    chat = socket
    setConnected(false, 'connecting...')
    calls.clear()
    socket.onmessage = event => {
      const m = JSON.parse(event.data)
      if (m.jsonrpc === '2.0' && calls.has(m.id)) {
        const done = calls.get(m.id)
        calls.delete(m.id)
        done(m)
      } else if (m.type === 'welcome') {
        myId = m.id
        setConnected(true, `${m.nick} in ${m.room} · ${m.members} here`)
        show([`You joined ${m.room}.`], 'meta')
      } else if (m.type === 'message') {
        const line = show([bold(m.nick), `: ${m.text}`])
        if (m.from === myId) line.dataset.at = String(m.at)
      } else if (m.type === 'joined' || m.type === 'left') {
        show([`${m.nick} ${m.type} · ${m.members} here`], 'meta')
        $('status').textContent = `${nick} in ${room} · ${m.members} here`
      } else if (m.type === 'announce') {
        show([`Announcement: ${m.text}`], 'announce')
      }
    }
    socket.onclose = event => {
      if (socket !== chat) return
      const why = event.code === 1008 ? 'refused: check the nickname and room (letters, digits, - and _)' : `closed (${event.code})`
      setConnected(false, why)
    }
  }

  function watchLobby () {
    const lobby = new WebSocket(`${wsBase}/ws/lobby`)
    lobby.onmessage = event => {
      const m = JSON.parse(event.data)
      if (m.type !== 'rooms') return
      const items = m.rooms.map(({ room, members }) => {
        const li = document.createElement('li')
        const a = document.createElement('a')
        a.textContent = room
        a.onclick = () => { $('room').value = room; $('join').requestSubmit() }
        const count = document.createElement('span')
        count.textContent = String(members)
        count.className = 'count'
        li.append(a, count)
        return li
      })
      $('rooms').replaceChildren(...(items.length ? items : [Object.assign(document.createElement('li'), { textContent: 'none yet', className: 'meta' })]))
    }
    lobby.onclose = () => setTimeout(watchLobby, 1000)
  }

  $('join').addEventListener('submit', event => {
    event.preventDefault()
    join($('nick').value.trim(), $('room').value.trim())
  })
  $('say').addEventListener('submit', event => {
    event.preventDefault()
    const text = $('text').value.trim()
    if (text && chat && chat.readyState === WebSocket.OPEN) call('say', { text }, said)
    $('text').value = ''
  })
  $('nick').value = `guest${Math.floor(Math.random() * 1000)}`
  watchLobby()
})()
