// Money is whole yuan (integers up to 10^15, exact in a JS number). No floats are ever shown.

export const MAX_AMOUNT = 1e15;

const GROUP = /\B(?=(\d{3})+(?!\d))/g;

/** "128500000" -> "128,500,000" */
export function grouped(amount) {
  return String(Math.trunc(amount)).replace(GROUP, ",");
}

/** The amount in 万元 (ten-thousand yuan), exact: 128,500,000 -> "12,850"; 1,234,567 -> "123.4567". */
export function wan(amount) {
  const whole = Math.floor(amount / 10000);
  const rest = amount % 10000;
  if (!rest) return grouped(whole);
  return `${grouped(whole)}.${String(rest).padStart(4, "0").replace(/0+$/, "")}`;
}

const DIGITS = "零壹贰叁肆伍陆柒捌玖";
const SMALL = ["", "拾", "佰", "仟"];

/**
 * Chinese uppercase financial numerals (大写金额), whole yuan:
 * 128500000 -> "壹亿贰仟捌佰伍拾万元整", 100000001 -> "壹亿零壹元整".
 * Sections of four digits take 万 / 亿 / 万(亿); runs of zeros read as one 零.
 */
export function chineseUpper(amount) {
  if (!Number.isSafeInteger(amount) || amount < 0 || amount > MAX_AMOUNT) return "";
  if (amount === 0) return "零元整";
  const digits = String(amount);
  const sections = [];
  for (let end = digits.length; end > 0; end -= 4) {
    sections.push(digits.slice(Math.max(0, end - 4), end).padStart(4, "0"));
  }
  let out = "";
  let zero = false;
  for (let s = sections.length - 1; s >= 0; s -= 1) {
    const section = sections[s];
    let any = false;
    for (let i = 0; i < 4; i += 1) {
      const d = Number(section[i]);
      if (d === 0) {
        if (out) zero = true;
        continue;
      }
      if (zero) out += "零";
      zero = false;
      any = true;
      out += DIGITS[d] + SMALL[3 - i];
    }
    if (any) {
      if (s === 1) out += "万";
      else if (s === 2) out += "亿";
      else if (s === 3) out += sections[2] === "0000" ? "万亿" : "万";
    }
  }
  return `${out}元整`;
}

/**
 * Parse what a bidder typed: digits with optional separators (",", " ", "，") and an optional
 * trailing 元. Returns an integer, or null when the text is not a whole number of yuan.
 */
export function parseAmount(text) {
  const cleaned = String(text).trim().replace(/[,，\s]/g, "").replace(/元$/, "");
  if (!/^\d{1,16}$/.test(cleaned)) return null;
  const value = Number(cleaned);
  return Number.isSafeInteger(value) ? value : null;
}
