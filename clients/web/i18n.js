// Texts in Simplified Chinese (default) and English. The choice is kept in localStorage.
// Refusal codes come from the README's table; the server's English `message` is never shown
// as is, so every code a page can meet has a sentence here in both languages.

import { grouped } from "./money.js";
import * as tender from "./i18n-tender.js";

const STORE_KEY = "bidhall.lang";
export const LANGS = ["zh", "en"];

const zh = {
  "site.centre": "公共资源交易中心",
  "site.centre.short": "公共资源交易中心",
  "site.system": "网上竞价系统",
  "nav.lots": "竞价项目",
  "lang.other": "English",
  "lang.other.label": "Switch to English",
  "clock.label": "北京时间",
  "clock.unsynced": "正在校时…",
  "conn.connecting": "连接中…",
  "conn.connected": "已连接",
  "conn.reconnecting": "正在重新连接…",
  "conn.offline": "网络离线",
  "conn.stopped": "已断开",

  "phase.announcement": "公告",
  "phase.listing": "挂牌",
  "phase.listing_stopped": "挂牌截止",
  "phase.preparation": "准备",
  "phase.timed": "限时竞价",
  "phase.auction": "网上拍卖",
  "phase.sold": "成交",
  "phase.unsold": "流拍",
  "phase.capped": "达到最高限价",

  "kind.land": "国有建设用地使用权",
  "kind.mining": "矿业权",

  "count.announcement": "距挂牌开始",
  "count.listing": "距挂牌截止",
  "count.listing_stopped": "距挂牌截止",
  "count.preparation": "距网上拍卖开始",
  "count.timed": "限时竞价剩余时间",
  "count.auction": "拍卖倒计时",
  "count.frozen": "竞价已暂停，计时停止",
  "count.final": "竞价已结束",
  "count.due": "等待系统确认…",
  "count.none": "—",
  "count.days": "{d}天",
  "count.ends_at": "截止时间",

  "lot.id": "宗地编号",
  "lot.title": "宗地名称",
  "price.current": "当前价",
  "price.none": "暂无报价",
  "price.unit": "元",
  "price.wan": "{wan} 万元",
  "price.start": "起始价",
  "price.increment": "加价幅度",
  "price.next_min": "最低可报价",
  "price.cap": "最高限价",
  "price.deposit": "竞买保证金",
  "price.bids": "报价次数",
  "leader.label": "领先号牌",
  "leader.none": "—",
  "yuan": "{amount} 元",

  "you.paddle": "您的竞买号牌",
  "you.leading": "当前最高报价",
  "you.outbid": "已被超越",
  "you.nobid": "尚未报价",
  "you.closed.won": "您已竞得",
  "you.closed.lost": "未竞得",

  "bid.one": "加价一次 +{inc}",
  "bid.first": "按起始价报价",
  "bid.one.amount": "报价 {amount} 元",
  "bid.custom": "自定义报价",
  "bid.custom.placeholder": "输入报价金额（元）",
  "bid.custom.submit": "核对并提交",
  "bid.custom.hint": "最低可报价 {min} 元",
  "bid.disabled.leading": "您是当前最高报价人，无需加价",
  "bid.disabled.phase": "当前阶段不接受报价",
  "bid.disabled.frozen": "竞价已暂停，暂不能报价",
  "bid.disabled.ineligible": "您不具备本阶段的竞价资格",
  "bid.disabled.offline": "连接中断，恢复连接后方可报价",
  "bid.disabled.pending": "正在等待上一笔报价的确认",
  "bid.disabled.capped": "已达到最高限价，价格报价已停止",
  "bid.disabled.stopped": "本页已断开，暂不能报价",
  "input.invalid": "请输入 1 至 1,000,000,000,000,000 之间的整数金额（元）",
  "input.low": "报价不得低于最低可报价 {min} 元",
  "input.above_cap": "报价不得高于最高限价 {cap} 元",

  "confirm.title": "确认报价",
  "confirm.lot": "宗地",
  "confirm.figures": "小写金额",
  "confirm.upper": "大写金额",
  "confirm.note": "报价一经提交即具法律效力，不可撤回。",
  "confirm.stale": "注意：当前最低可报价已变为 {min} 元，此报价可能不被接受。",
  "confirm.ok": "确认提交",
  "confirm.cancel": "返回修改",

  "fb.sending": "报价 {amount} 元已发送，等待系统确认…",
  "fb.waiting": "报价 {amount} 元尚未确认，连接恢复后将自动重新提交（同一报价编号，不会重复）。",
  "fb.ack": "报价成功：{amount} 元，系统时间 {time}",
  "fb.reject": "报价未被接受：{reason}",
  "fb.error": "请求未被接受：{reason}",

  "session.replaced":
    "您的竞买账号已在其他页面或设备登录，本页已断开连接。如需在本页继续竞价，请点击“在本页继续”。",
  "session.takeover": "在本页继续",
  "token.missing": "缺少竞买凭证。请使用交易中心发放的竞买大厅链接进入。",
  "token.other_lot": "此竞买凭证属于另一宗地（{lot}），请使用本宗地的竞买大厅链接。",
  "token.fatal": "无法登录竞买大厅：{reason}",
  "link.board": "查看公开看板",
  "link.hall": "进入竞买大厅",

  "frozen.banner": "竞价已暂停",
  "frozen.reason": "原因：{reason}",
  "result.sold": "成交",
  "result.sold.detail": "成交价 {price} 元（{wan} 万元），竞得号牌 {paddle}",
  "result.unsold": "流拍",
  "result.unsold.detail": "流拍原因：{reason}",
  "result.capped": "达到最高限价",
  "result.capped.detail": "号牌 {paddle} 报价达到最高限价 {price} 元，转入后续程序",
  "reason.no_bids": "无人报价",
  "reason.reserve_not_met": "最高报价未达到保留价",

  "history.title": "报价记录",
  "history.recent": "最近报价",
  "history.paddle": "号牌",
  "history.me": "本人",
  "history.amount": "报价（元）",
  "history.time": "时间（北京时间）",
  "history.empty": "暂无报价",
  "history.count": "共 {n} 次报价",
  "history.more": "仅显示最近 {n} 条",
  "chart.title": "价格走势",
  "chart.empty": "暂无报价，出现报价后显示价格走势",
  "chart.label": "价格走势图：共 {n} 次报价，最新价 {price} 元",
  "chart.wan": "万元",

  "hall.title": "竞买大厅",
  "board.title": "公开看板",
  "board.public": "公开信息 · 竞买人仅以号牌显示",
  "index.title": "竞价项目一览",
  "index.lot": "宗地",
  "index.phase": "阶段",
  "index.price": "当前价（元）",
  "index.ends": "截止时间",
  "index.open": "查看看板",
  "index.empty": "暂无竞价项目",
  "index.loading": "正在加载…",
  "index.failed": "无法加载项目列表，稍后自动重试。",
  "index.frozen": "已暂停",

  "error.unknown": "未知错误（{code}）",

  "code.bad_json": "消息格式错误（非有效 JSON）",
  "code.bad_message": "消息内容不完整或格式不符",
  "code.unknown_type": "不支持的消息类型",
  "code.frame_too_large": "消息过大（超过 4 KiB）",
  "code.invalid_amount": "报价金额须为 1 至 10^15 元之间的整数",
  "code.unauthorized": "尚未登录，请使用竞买凭证登录",
  "code.bad_token": "竞买凭证无效",
  "code.token_expired": "竞买凭证已过期，请联系交易中心重新获取",
  "code.forbidden": "当前凭证无权进行此操作",
  "code.unknown_lot": "宗地不存在",
  "code.not_qualified": "您尚未取得本宗地的竞买资格",
  "code.not_eligible": "您不具备本阶段的竞价资格",
  "code.too_low": "报价低于最低可接受价格",
  "code.too_low.min": "报价低于最低可接受价格，最低可报价为 {minimum} 元",
  "code.not_multiple": "加价须为加价幅度的整数倍",
  "code.not_multiple.min": "加价须为加价幅度 {increment} 元的整数倍，最低可报价为 {minimum} 元",
  "code.above_cap": "报价高于最高限价",
  "code.already_leading": "您已是当前最高报价人",
  "code.phase_closed": "当前阶段不接受报价",
  "code.frozen": "竞价已暂停",
  "code.duplicate_bid_id": "报价编号重复（同一编号已用于不同金额）",
  "code.rate_limited": "操作过于频繁，请稍后再试",
  "code.rate_limited.wait": "操作过于频繁，请 {seconds} 秒后再试",
  "code.unavailable": "系统暂时无法处理，正在以同一报价编号重试",
  "code.session_replaced": "账号已在其他地方登录，本页连接已关闭",
  "code.already_greeted": "本连接已登录",
  "code.not_found": "资源不存在",
  // ---------------------------------------------------------------- sealed-bid tenders

  "code.network": "网络连接失败，请检查网络后重试",
  "code.unknown": "操作未完成",
  "code.unknown_tender": "开标项目不存在",
  "code.bad_public_key": "公钥格式不正确",
  "code.invalid_request": "请求内容不符合要求",
  "code.invalid_terms": "项目条件不符合要求",
  "code.tender_exists": "开标项目已存在",
  "code.no_tender": "开标项目尚未创建",
  "code.tender_finished": "开标已结束或已流标",
  "code.wrong_state": "当前阶段不能进行此操作",
  "code.already_registered": "已登记过公钥，不能重复登记",
  "code.not_registered": "尚未登记投标密钥",
  "code.not_accepting": "项目尚未开始接受投标",
  "code.deadline_passed": "投标截止时间已过",
  "code.no_bid": "您没有递交投标文件",
  "code.already_checked_in": "已经签到",
  "code.check_in_not_open": "签到尚未开始",
  "code.check_in_closed": "签到已结束",
  "code.too_early": "投标截止时间未到",
  "code.not_decrypting": "当前不在解密时段",
  "code.paused": "开标已暂停",
  "code.not_paused": "开标未暂停",
  "code.already_decrypted": "文件密钥已提交，不能重复提交",
  "code.key_not_released": "文件密钥尚未提交",
  "code.objection_window_closed": "异议期未开始或已结束",
  "code.objection_window_open": "异议期尚未结束",
  "code.objection_exists": "该异议已存在",
  "code.unknown_objection": "没有这条异议",
  "code.already_answered": "该异议已答复",
  "code.objections_pending": "尚有异议未答复",
  "code.already_confirmed": "已确认过开标记录",
  "code.bad_key_file": "不是有效的密钥备份文件",
  "code.wrong_password": "备份密码错误",
  "code.bad_password": "请设置备份密码",
  "code.weak_password": "备份密码过于简单",
  "code.wrong_key": "此密钥不能解开本投标文件",
  "code.other_key": "此备份文件中的密钥不是已登记的公钥",
  "code.not_an_envelope": "不是加密投标文件",
  "code.bad_header": "投标文件信封头格式错误",
  "code.bad_length": "投标文件长度不符",
  "code.bad_chunk": "投标文件内容校验失败",
  "code.bad_summary": "开标一览表内容不符合要求",
  "code.bad_document": "无法读取所选文件",
  "code.bad_tender": "项目编号不符合要求",
  "code.bad_bidder": "投标人编号不符合要求",
  "code.bad_id": "编号不符合要求",
  "code.wrong_tender": "投标文件不属于本项目",
  "code.wrong_bidder": "投标文件不属于本投标人",
  "code.wrong_recipient": "投标文件未使用已登记的公钥加密",
  "code.source_changed": "所选文件在上传期间被修改，请重新选择",
  "code.too_large": "文件过大",
  "code.bad_range": "读取加密数据出错",
  "code.aborted": "上传已停止",
  "code.bad_source": "无法读取所选文件",
  "code.bad_response": "服务器应答异常",
  "code.bad_request": "请求格式错误",
  "code.offset_mismatch": "上传位置不一致，请继续上传",
  "code.unknown_upload": "上传不存在或已过期",
  "code.upload_expired": "上传已过期，请重新上传",
  "code.upload_busy": "该上传正在进行中",
  "code.upload_complete": "上传已完成",
  "code.checksum_mismatch": "数据校验失败",
  // ---------------------------------------------------------------- live video
  "stream.title": "现场直播",
  "stream.state.offline": "直播未开始",
  "stream.state.connecting": "正在连接…",
  "stream.state.live": "直播中",
  "stream.state.retrying": "连接中断，{seconds} 秒后重试",
  "stream.state.busy": "观看人数已满，{seconds} 秒后重试",
  "stream.state.unavailable": "暂无直播",
  "stream.viewers": "{n} 人观看",
  "stream.hint.offline": "主持人开始直播后，现场画面将在此播放。",
  "stream.hint.unavailable": "本场次没有现场直播。",
  "stream.video": "现场直播画面",
  "stream.host.title": "现场直播",
  "stream.host.page": "直播主持",
  "stream.host.kind.lot": "宗地",
  "stream.host.kind.tender": "开标项目",
  "stream.host.public": "打开公开页面",
  "stream.host.start": "开始直播",
  "stream.host.stop": "结束直播",
  "stream.host.idle": "点击“开始直播”后开启摄像头和麦克风，画面经本系统向公众直播。",
  "stream.host.state.off": "直播未开始",
  "stream.host.state.camera": "正在开启摄像头…",
  "stream.host.state.connecting": "正在连接…",
  "stream.host.state.live": "直播中",
  "stream.host.state.retrying": "连接中断，{seconds} 秒后重新推流",
  "stream.host.state.failed": "直播已中断",
  "stream.host.not_started": "未能开始直播：{reason}",
  "stream.host.ended": "直播已结束。",
  "stream.host.no_token": "缺少工作人员凭证，不能开始直播。请使用交易中心发放的主持链接进入。",
  "code.unknown_session": "没有可直播的宗地或开标项目",
  "code.unknown_resource": "直播连接已结束",
  "code.already_publishing": "本场次已有主持人在直播",
  "code.relay_full": "观看人数已满，请稍后再试",
  "code.codec_mismatch": "浏览器不支持本直播的视频格式",
  "code.bad_sdp": "直播连接参数不正确",
  "code.bad_sdpfrag": "直播连接参数不正确",
  "code.unsupported_media_type": "请求格式不受支持",
  "code.ice_restart_unsupported": "直播连接需重新建立",
  "code.precondition_failed": "直播连接已变更",
  "code.already_recording": "本场次已在录制",
  "code.not_recording": "本场次未在录制",
  "code.no_h264": "此浏览器不能发送 H.264 视频，请使用 Chrome 或 Edge 浏览器",
  "code.camera_denied": "未获得摄像头或麦克风的使用权限",
  "code.no_camera": "未找到可用的摄像头",
  "code.media_failed": "媒体连接失败",
};

const en = {
  "site.centre": "Public Resource Trading Centre",
  "site.centre.short": "Trading Centre",
  "site.system": "Online Bidding",
  "nav.lots": "Lots",
  "lang.other": "中文",
  "lang.other.label": "切换到中文",
  "clock.label": "Beijing time",
  "clock.unsynced": "Syncing clock…",
  "conn.connecting": "Connecting…",
  "conn.connected": "Connected",
  "conn.reconnecting": "Reconnecting…",
  "conn.offline": "Offline",
  "conn.stopped": "Disconnected",

  "phase.announcement": "Announcement",
  "phase.listing": "Listing",
  "phase.listing_stopped": "Listing closed to bids",
  "phase.preparation": "Preparation",
  "phase.timed": "Timed bidding",
  "phase.auction": "Online auction",
  "phase.sold": "Sold",
  "phase.unsold": "Unsold",
  "phase.capped": "Price cap reached",

  "kind.land": "State land-use right",
  "kind.mining": "Mining right",

  "count.announcement": "Listing opens in",
  "count.listing": "Listing ends in",
  "count.listing_stopped": "Listing ends in",
  "count.preparation": "Auction starts in",
  "count.timed": "Time left",
  "count.auction": "Time left",
  "count.frozen": "Bidding paused; clock stopped",
  "count.final": "Bidding has closed",
  "count.due": "Awaiting the system…",
  "count.none": "—",
  "count.days": "{d}d",
  "count.ends_at": "Ends at",

  "lot.id": "Lot no.",
  "lot.title": "Lot",
  "price.current": "Current price",
  "price.none": "No bids yet",
  "price.unit": "yuan",
  "price.wan": "{wan} 万元",
  "price.start": "Start price",
  "price.increment": "Increment",
  "price.next_min": "Next minimum bid",
  "price.cap": "Price cap",
  "price.deposit": "Deposit",
  "price.bids": "Bids",
  "leader.label": "Leading paddle",
  "leader.none": "—",
  "yuan": "{amount} yuan",

  "you.paddle": "Your paddle",
  "you.leading": "You hold the highest bid",
  "you.outbid": "You have been outbid",
  "you.nobid": "No bid from you yet",
  "you.closed.won": "You won this lot",
  "you.closed.lost": "Not won",

  "bid.one": "Raise once +{inc}",
  "bid.first": "Bid the start price",
  "bid.one.amount": "Bid {amount} yuan",
  "bid.custom": "Custom amount",
  "bid.custom.placeholder": "Amount in yuan",
  "bid.custom.submit": "Review and submit",
  "bid.custom.hint": "Lowest acceptable bid: {min} yuan",
  "bid.disabled.leading": "You hold the highest bid",
  "bid.disabled.phase": "This phase does not take bids",
  "bid.disabled.frozen": "Bidding is paused",
  "bid.disabled.ineligible": "You may not bid in this phase",
  "bid.disabled.offline": "Connection lost; you can bid again once it is back",
  "bid.disabled.pending": "Waiting for your previous bid to be confirmed",
  "bid.disabled.capped": "The price cap has been reached; price bids have stopped",
  "bid.disabled.stopped": "This page is disconnected; it cannot bid",
  "input.invalid": "Enter a whole number of yuan from 1 to 1,000,000,000,000,000",
  "input.low": "The bid may not be below the lowest acceptable bid, {min} yuan",
  "input.above_cap": "The bid may not exceed the price cap, {cap} yuan",

  "confirm.title": "Confirm your bid",
  "confirm.lot": "Lot",
  "confirm.figures": "Amount in figures",
  "confirm.upper": "Amount in Chinese capitals (大写)",
  "confirm.note": "A bid is binding once submitted and cannot be withdrawn.",
  "confirm.stale":
    "Note: the lowest acceptable bid is now {min} yuan; this bid may be refused.",
  "confirm.ok": "Submit bid",
  "confirm.cancel": "Go back",

  "fb.sending": "Bid of {amount} yuan sent; awaiting confirmation…",
  "fb.waiting":
    "Bid of {amount} yuan not yet confirmed; it is sent again with the same bid id once the " +
    "connection is back (never placed twice).",
  "fb.ack": "Bid accepted: {amount} yuan at {time} (system time)",
  "fb.reject": "Bid refused: {reason}",
  "fb.error": "Request refused: {reason}",

  "session.replaced":
    "Your bidder account signed in on another page or device, so this page was disconnected. " +
    "To bid from this page, choose “Continue here”.",
  "session.takeover": "Continue here",
  "token.missing": "No bidder credential. Open the hall link issued by the trading centre.",
  "token.other_lot": "This credential is for another lot ({lot}). Use this lot's hall link.",
  "token.fatal": "Cannot sign in to the bidder hall: {reason}",
  "link.board": "Open the public board",
  "link.hall": "Enter the bidder hall",

  "frozen.banner": "Bidding paused",
  "frozen.reason": "Reason: {reason}",
  "result.sold": "Sold",
  "result.sold.detail": "Sold for {price} yuan ({wan} 万元) to paddle {paddle}",
  "result.unsold": "Unsold",
  "result.unsold.detail": "Reason: {reason}",
  "result.capped": "Price cap reached",
  "result.capped.detail":
    "Paddle {paddle} reached the price cap of {price} yuan; the follow-up procedure applies",
  "reason.no_bids": "no bids",
  "reason.reserve_not_met": "the highest bid did not reach the reserve",

  "history.title": "Bid history",
  "history.recent": "Recent bids",
  "history.paddle": "Paddle",
  "history.me": "You",
  "history.amount": "Amount (yuan)",
  "history.time": "Time (Beijing)",
  "history.empty": "No bids yet",
  "history.count": "{n} bids in all",
  "history.more": "Showing the latest {n}",
  "chart.title": "Price over time",
  "chart.empty": "The price chart appears with the first bid",
  "chart.label": "Price chart: {n} bids, latest {price} yuan",
  "chart.wan": "万元",

  "hall.title": "Bidder hall",
  "board.title": "Public board",
  "board.public": "Public information · bidders appear as paddle numbers only",
  "index.title": "Lots",
  "index.lot": "Lot",
  "index.phase": "Phase",
  "index.price": "Current price (yuan)",
  "index.ends": "Ends",
  "index.open": "Open board",
  "index.empty": "No lots yet",
  "index.loading": "Loading…",
  "index.failed": "Could not load the lots; retrying shortly.",
  "index.frozen": "Paused",

  "error.unknown": "Unknown error ({code})",

  "code.bad_json": "The message is not valid JSON",
  "code.bad_message": "The message is incomplete or malformed",
  "code.unknown_type": "Unsupported message type",
  "code.frame_too_large": "The message is too large (over 4 KiB)",
  "code.invalid_amount": "The amount must be a whole number of yuan from 1 to 10^15",
  "code.unauthorized": "Not signed in; sign in with your bidder credential",
  "code.bad_token": "The bidder credential is not valid",
  "code.token_expired": "The bidder credential has expired; ask the trading centre for a new one",
  "code.forbidden": "This credential may not do that",
  "code.unknown_lot": "No such lot",
  "code.not_qualified": "You are not qualified to bid for this lot",
  "code.not_eligible": "You may not bid in this phase",
  "code.too_low": "The amount is below the lowest acceptable price",
  "code.too_low.min": "The amount is below the lowest acceptable price of {minimum} yuan",
  "code.not_multiple": "The raise must be a whole multiple of the increment",
  "code.not_multiple.min":
    "The raise must be a whole multiple of {increment} yuan; the lowest acceptable bid is " +
    "{minimum} yuan",
  "code.above_cap": "The amount is above the price cap",
  "code.already_leading": "You already hold the highest bid",
  "code.phase_closed": "This phase does not take bids",
  "code.frozen": "Bidding is paused",
  "code.duplicate_bid_id": "This bid id was already used for a different amount",
  "code.rate_limited": "Too many requests; please wait a moment",
  "code.rate_limited.wait": "Too many requests; try again in {seconds} s",
  "code.unavailable": "The system is briefly unavailable; retrying with the same bid id",
  "code.session_replaced": "Your account signed in elsewhere; this connection was closed",
  "code.already_greeted": "This connection is already signed in",
  "code.not_found": "No such resource",
  // ---------------------------------------------------------------- sealed-bid tenders

  "code.network": "The network is unreachable; check the connection and try again",
  "code.unknown": "The action did not complete",
  "code.unknown_tender": "No such tender",
  "code.bad_public_key": "The public key is malformed",
  "code.invalid_request": "The request is not valid",
  "code.invalid_terms": "The tender terms are not valid",
  "code.tender_exists": "The tender already exists",
  "code.no_tender": "The tender has not been created",
  "code.tender_finished": "The opening is closed or the tender failed",
  "code.wrong_state": "Not possible at this stage",
  "code.already_registered": "A key is already registered",
  "code.not_registered": "No bid key registered yet",
  "code.not_accepting": "The tender is not accepting bids yet",
  "code.deadline_passed": "The submission deadline has passed",
  "code.no_bid": "You have no bid in this tender",
  "code.already_checked_in": "Already checked in",
  "code.check_in_not_open": "Check-in has not opened yet",
  "code.check_in_closed": "Check-in has closed",
  "code.too_early": "The deadline has not passed yet",
  "code.not_decrypting": "Not in the decryption window",
  "code.paused": "The opening is paused",
  "code.not_paused": "The opening is not paused",
  "code.already_decrypted": "The file key was already sent",
  "code.key_not_released": "The file key has not been sent",
  "code.objection_window_closed": "The objection period is not open",
  "code.objection_window_open": "The objection period has not ended",
  "code.objection_exists": "This objection already exists",
  "code.unknown_objection": "No such objection",
  "code.already_answered": "The objection was already answered",
  "code.objections_pending": "Some objections are not answered yet",
  "code.already_confirmed": "The record was already confirmed",
  "code.bad_key_file": "This is not a valid key backup file",
  "code.wrong_password": "Wrong backup password",
  "code.bad_password": "Set a backup password",
  "code.weak_password": "The backup password is too weak",
  "code.wrong_key": "This key does not open this bid",
  "code.other_key": "This backup holds a key other than the registered one",
  "code.not_an_envelope": "Not a sealed bid file",
  "code.bad_header": "The envelope header is malformed",
  "code.bad_length": "The bid file has the wrong length",
  "code.bad_chunk": "The bid file failed its integrity check",
  "code.bad_summary": "The summary is not valid",
  "code.bad_document": "The chosen file cannot be read",
  "code.bad_tender": "The tender id is not valid",
  "code.bad_bidder": "The bidder id is not valid",
  "code.bad_id": "The id is not valid",
  "code.wrong_tender": "The bid file belongs to another tender",
  "code.wrong_bidder": "The bid file belongs to another bidder",
  "code.wrong_recipient": "The bid file is not sealed to the registered key",
  "code.source_changed": "The file changed during the upload; choose it again",
  "code.too_large": "The file is too large",
  "code.bad_range": "Reading the sealed data failed",
  "code.aborted": "Upload stopped",
  "code.bad_source": "The chosen file cannot be read",
  "code.bad_response": "The server's answer was not understood",
  "code.bad_request": "The request is malformed",
  "code.offset_mismatch": "The upload position differs; continue the upload",
  "code.unknown_upload": "The upload does not exist or has expired",
  "code.upload_expired": "The upload has expired; upload again",
  "code.upload_busy": "This upload is already running",
  "code.upload_complete": "The upload is complete",
  "code.checksum_mismatch": "The data failed its checksum",
  // ---------------------------------------------------------------- live video
  "stream.title": "Live video",
  "stream.state.offline": "Not live yet",
  "stream.state.connecting": "Connecting…",
  "stream.state.live": "Live",
  "stream.state.retrying": "Connection lost; retrying in {seconds} s",
  "stream.state.busy": "Too many viewers; retrying in {seconds} s",
  "stream.state.unavailable": "No live video",
  "stream.viewers": "{n} watching",
  "stream.hint.offline": "The video plays here once the host goes live.",
  "stream.hint.unavailable": "This session has no live video.",
  "stream.video": "Live video",
  "stream.host.title": "Live video",
  "stream.host.page": "Live stream host",
  "stream.host.kind.lot": "Lot",
  "stream.host.kind.tender": "Tender",
  "stream.host.public": "Open the public page",
  "stream.host.start": "Go live",
  "stream.host.stop": "Stop",
  "stream.host.idle":
    "“Go live” opens the camera and microphone and streams them to the public through " +
    "this system.",
  "stream.host.state.off": "Not live",
  "stream.host.state.camera": "Opening the camera…",
  "stream.host.state.connecting": "Connecting…",
  "stream.host.state.live": "Live",
  "stream.host.state.retrying": "Connection lost; publishing again in {seconds} s",
  "stream.host.state.failed": "The stream stopped",
  "stream.host.not_started": "Could not go live: {reason}",
  "stream.host.ended": "The stream has ended.",
  "stream.host.no_token":
    "No staff token: you cannot go live. Use the host link issued by the trading centre.",
  "code.unknown_session": "No such lot or tender to stream",
  "code.unknown_resource": "The stream connection has ended",
  "code.already_publishing": "Someone is already live on this session",
  "code.relay_full": "Too many viewers; try again shortly",
  "code.codec_mismatch": "This browser cannot play the stream's video format",
  "code.bad_sdp": "The stream connection parameters are not valid",
  "code.bad_sdpfrag": "The stream connection parameters are not valid",
  "code.unsupported_media_type": "The request format is not supported",
  "code.ice_restart_unsupported": "The stream connection must be set up again",
  "code.precondition_failed": "The stream connection has changed",
  "code.already_recording": "This session is being recorded already",
  "code.not_recording": "This session is not being recorded",
  "code.no_h264": "This browser cannot send H.264 video; use Chrome or Edge",
  "code.camera_denied": "Permission for the camera or microphone was refused",
  "code.no_camera": "No usable camera was found",
  "code.media_failed": "The media connection failed",
};

const TEXTS = { zh: { ...zh, ...tender.zh }, en: { ...en, ...tender.en } };

function stored() {
  try {
    return localStorage.getItem(STORE_KEY);
  } catch {
    return null;
  }
}

let current = LANGS.includes(stored()) ? stored() : "zh";
const listeners = new Set();

export function lang() {
  return current;
}

export function setLang(next) {
  if (!LANGS.includes(next) || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORE_KEY, next);
  } catch {
    // private mode: the choice lasts for this page only
  }
  applyStatic();
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/** The text for `key` with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = TEXTS[current][key] ?? TEXTS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

export function has(key) {
  return key in TEXTS[current];
}

/** A refusal's sentence, by its stable code, with the figures it carries. */
export function refusal(msg) {
  const code = msg?.code ?? "";
  if (code === "too_low" && msg.minimum != null) {
    return t("code.too_low.min", { minimum: grouped(msg.minimum) });
  }
  if (code === "not_multiple" && msg.minimum != null) {
    return t("code.not_multiple.min", {
      increment: grouped(msg.increment ?? 0),
      minimum: grouped(msg.minimum),
    });
  }
  if (code === "rate_limited" && msg.retry_after_ms != null) {
    return t("code.rate_limited.wait", { seconds: Math.max(1, Math.ceil(msg.retry_after_ms / 1000)) });
  }
  if (has(`code.${code}`)) return t(`code.${code}`);
  return t("error.unknown", { code: code || "?" });
}

export function phaseName(phase) {
  return phase ? t(`phase.${phase}`) : "—";
}

/** Fill every element marked data-i18n (text), data-i18n-placeholder and data-i18n-aria. */
export function applyStatic(root = document) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
}

/** Every code the README lists, for tests and checks: each has a text in both languages. */
export function missingCodes(codes) {
  return codes.filter((c) => !(`code.${c}` in zh) || !(`code.${c}` in en));
}
